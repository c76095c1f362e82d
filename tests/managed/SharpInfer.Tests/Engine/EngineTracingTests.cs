// EngineTracingTests.cs: the engine reports its step phases and each request as activities on
// the "SharpInfer.Engine" source (the same places it marks with NVTX ranges; the native test
// tests/native/test_trace.cpp checks that those reach a profiler).
using System.Diagnostics;
using SharpInfer.Engine;

namespace SharpInfer.Tests.Engine;

/// <summary>Alone, so no other test's engine adds activities to the source while one listens.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TracingCollection
{
    public const string Name = "Tracing";
}

[Collection(TracingCollection.Name)]
public sealed class EngineTracingTests
{
    private static List<Activity> Listen(out ActivityListener listener)
    {
        var stopped = new List<Activity>();
        listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == EngineTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity => { lock (stopped) stopped.Add(activity); },
        };
        ActivitySource.AddActivityListener(listener);
        return stopped;
    }

    [Fact]
    public async Task Steps_and_requests_are_traced()
    {
        var stopped = Listen(out var listener);
        using (listener)
        {
            var model = new FakePagedModel(numBlocks: 64);
            using var engine = new InferenceEngine(model, FakePagedModel.Tokenizer(300));
            var greedy = SamplingParams.Greedy with { MaxTokens = 4 };
            var results = await Task.WhenAll(
                Completion.CollectAsync(engine.GenerateAsync(new[] { 1, 5, 6, 7 }, greedy)),
                Completion.CollectAsync(engine.GenerateAsync(new[] { 1, 9, 10 }, greedy)));
            Assert.All(results, r => Assert.Equal(4, r.Tokens.Length));

            model.OnStep = _ => Thread.Sleep(2);  // so the cancellation lands before 200 tokens
            using var cts = new CancellationTokenSource();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            {
                await foreach (var _ in engine.GenerateAsync(new[] { 1, 2, 3 }, SamplingParams.Greedy with { MaxTokens = 200 }, cts.Token))
                    cts.Cancel();
            });

            long steps = engine.Stats.Steps;
            Activity[] all;
            lock (stopped) all = [.. stopped];
            int Count(string name) => all.Count(a => a.OperationName == name);
            Assert.True(steps > 0);
            Assert.Equal(steps, Count("forward"));
            Assert.Equal(steps, Count("sample"));
            Assert.Equal(steps, Count("schedule"));

            var requests = all.Where(a => a.OperationName == "request").ToArray();
            Assert.Equal(3, requests.Length);
            Assert.All(requests, r => Assert.Null(r.Parent));
            var finished = requests.Where(r => (string?)r.GetTagItem("sharpinfer.request.finish_reason") == nameof(FinishReason.Length)).ToArray();
            Assert.Equal(2, finished.Length);
            Assert.All(finished, r => Assert.Equal(4, r.GetTagItem("sharpinfer.request.completion_tokens")));
            Assert.Equal(new[] { 3, 4 }, finished.Select(r => (int)r.GetTagItem("sharpinfer.request.prompt_tokens")!).Order());
            var cancelled = Assert.Single(requests, r => (string?)r.GetTagItem("sharpinfer.request.finish_reason") == "cancelled");
            Assert.Equal(ActivityStatusCode.Unset, cancelled.Status);
        }
    }
}
