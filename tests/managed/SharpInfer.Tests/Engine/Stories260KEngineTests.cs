// Stories260KEngineTests.cs: the engine on the real model and kernels (stories260K, cpu backend):
// concurrent greedy requests equal one-at-a-time requests and TextGenerator, a shrunken pool
// preempts and still matches, shared prefixes are reused, and the pool returns to full.
using SharpInfer.Backends;
using SharpInfer.Engine;
using SharpInfer.Llama;
using SharpInfer.Models;

namespace SharpInfer.Tests.Engine;

public sealed class Stories260KEngineTests
{
    private static readonly string[] Prompts =
    [
        "Once upon a time",
        "Lily and Ben went to the park to play with a big red ball.",
        "The cat",
        "One day, a little girl named Sue found a shiny box under her bed. She opened it and",
        "Tom had a dog.",
        "There was a tree",
        "Mom said, \"Do not touch the hot stove.\" But the boy did not listen, and he",
        "A bird",
    ];

    /// <summary>Model, backends and the single-sequence reference generator over one checkpoint.</summary>
    private sealed class Fixture : IDisposable
    {
        public ModelCheckpoint Checkpoint { get; }
        private readonly ComputeBackend _engineBackend, _referenceBackend;
        public LlamaModel EngineModel { get; }
        public TextGenerator Reference { get; }
        private readonly LlamaModel _referenceModel;

        public Fixture(int maxBatch = 64)
        {
            string dir = TestModels.RequireStories260K();
            Checkpoint = ModelLoader.Load(Path.Combine(dir, "gguf", "stories260K-f32.gguf"));
            _engineBackend = ComputeBackend.Open(BackendKind.Cpu, threads: 2);
            _referenceBackend = ComputeBackend.Open(BackendKind.Cpu, threads: 2);
            EngineModel = new LlamaModel(Checkpoint, _engineBackend, maxBatch);
            _referenceModel = new LlamaModel(Checkpoint, _referenceBackend);
            Reference = new TextGenerator(_referenceModel, Checkpoint.Tokenizer);
        }

        public void Dispose()
        {
            EngineModel.Dispose();
            _referenceModel.Dispose();
            _engineBackend.Dispose();
            _referenceBackend.Dispose();
            Checkpoint.Dispose();
        }
    }

    private static SamplingParams Greedy(int i) => SamplingParams.Greedy with { MaxTokens = 12 + 5 * (i % 4) };

    private static void AssertNoLeaks(InferenceEngine engine)
    {
        var stats = engine.Stats;
        Assert.Equal(0, stats.RunningSequences + stats.WaitingSequences);
        Assert.Equal(0, stats.KvBlocksUsed);
        Assert.Equal(stats.KvBlocksTotal, stats.KvBlocksFree);
        engine.BlockManager.CheckConsistency();
    }

    [SkippableTheory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(16)]
    public async Task ConcurrentGreedy_EqualsOneAtATime_AndTextGenerator(int n)
    {
        using var f = new Fixture();
        string Prompt(int i) => Prompts[i % Prompts.Length];
        var expected = Enumerable.Range(0, n).Select(i => f.Reference.Generate(Prompt(i), Greedy(i))).ToArray();

        using var engine = new InferenceEngine(f.EngineModel, f.Checkpoint.Tokenizer, new EngineOptions { KvBlocks = 256 });
        var oneAtATime = new List<Completion>();
        for (int i = 0; i < Math.Min(n, Prompts.Length); i++)
            oneAtATime.Add(await Completion.CollectAsync(engine.GenerateAsync(Prompt(i), Greedy(i))));
        var concurrent = await Task.WhenAll(Enumerable.Range(0, n).Select(i =>
            Task.Run(() => Completion.CollectAsync(engine.GenerateAsync(Prompt(i), Greedy(i))))));

        for (int i = 0; i < n; i++)
        {
            Assert.Equal(expected[i].GeneratedTokens, concurrent[i].Tokens);
            Assert.Equal(expected[i].Text, concurrent[i].Text);
            Assert.Equal(expected[i].FinishReason, concurrent[i].Reason);
            Assert.Equal(expected[i].PromptTokens.Count, concurrent[i].Usage.PromptTokens);
            if (i < oneAtATime.Count) Assert.Equal(oneAtATime[i].Tokens, concurrent[i].Tokens);
        }
        AssertNoLeaks(engine);
    }

    [SkippableFact]
    public async Task GreedyOnceUponATime_MatchesTheReferenceFile()
    {
        using var f = new Fixture();
        using var reference = System.Text.Json.JsonDocument.Parse(File.ReadAllText(
            Path.Combine(TestModels.Stories260KDir, "reference", "greedy_once_upon_a_time_64.json")));
        int[] expected = reference.RootElement.GetProperty("new_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        using var engine = new InferenceEngine(f.EngineModel, f.Checkpoint.Tokenizer);
        var result = await Completion.CollectAsync(engine.GenerateAsync("Once upon a time", SamplingParams.Greedy with { MaxTokens = 64 }));
        Assert.Equal(expected, result.Tokens);
        AssertNoLeaks(engine);
    }

    [SkippableFact]
    public async Task AShrunkenPool_PreemptsAndRecomputes_WithTheSameOutput()
    {
        using var f = new Fixture(maxBatch: 32);
        var parameters = SamplingParams.Greedy with { MaxTokens = 40 };
        var expected = Prompts.Select(p => f.Reference.Generate(p, parameters)).ToArray();
        // 12 blocks of 8 tokens: one request fits, all eight together need about 60.
        using var engine = new InferenceEngine(f.EngineModel, f.Checkpoint.Tokenizer, new EngineOptions { KvBlocks = 12, BlockSize = 8 });
        var results = await Task.WhenAll(Prompts.Select((p, i) =>
            Task.Run(() => Completion.CollectAsync(engine.GenerateAsync(p, parameters, priority: i % 3)))));

        Assert.True(engine.Stats.Preemptions > 0, "the pool was meant to force preemption");
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(expected[i].GeneratedTokens, results[i].Tokens);
            Assert.Equal(expected[i].Text, results[i].Text);
        }
        AssertNoLeaks(engine);
    }

    [SkippableFact]
    public async Task SharedPromptPrefix_IsReused_AndComputesFewerPromptTokens()
    {
        using var f = new Fixture();
        const string header = "Once upon a time, there was a little girl named Lily. She loved to play outside with her friends. One day, ";
        string[] questions = ["she saw a big dog.", "her mom gave her a red ball.", "it started to rain."];
        using var engine = new InferenceEngine(f.EngineModel, f.Checkpoint.Tokenizer);
        var parameters = SamplingParams.Greedy with { MaxTokens = 8 };

        var first = await Completion.CollectAsync(engine.GenerateAsync(header + questions[0], parameters));
        Assert.Equal(0, first.Usage.CachedPromptTokens);
        long computed = engine.Stats.PromptTokensComputed;
        Assert.Equal(first.Usage.PromptTokens, computed);

        foreach (string q in questions.Skip(1))
        {
            var before = engine.Stats.PromptTokensComputed;
            var r = await Completion.CollectAsync(engine.GenerateAsync(header + q, parameters));
            Assert.True(r.Usage.CachedPromptTokens >= 16, $"cached {r.Usage.CachedPromptTokens} prompt tokens");
            Assert.Equal(r.Usage.PromptTokens - r.Usage.CachedPromptTokens, engine.Stats.PromptTokensComputed - before);
            Assert.Equal(f.Reference.Generate(header + q, parameters).GeneratedTokens, r.Tokens);
        }
        Assert.True(engine.Stats.PromptTokensCached > 0);
        AssertNoLeaks(engine);
    }

    [SkippableFact]
    public async Task CancelledAndFinishedRequests_LeaveNoBlocksBehind()
    {
        using var f = new Fixture();
        using var engine = new InferenceEngine(f.EngineModel, f.Checkpoint.Tokenizer);
        using var cts = new CancellationTokenSource();
        var keep = Completion.CollectAsync(engine.GenerateAsync("The cat", SamplingParams.Greedy with { MaxTokens = 30 }));
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var d in engine.GenerateAsync("Once upon a time", SamplingParams.Greedy with { MaxTokens = 200 }, cts.Token))
                if (++seen == 5) cts.Cancel();
        });
        var kept = await keep;
        Assert.Equal(f.Reference.Generate("The cat", SamplingParams.Greedy with { MaxTokens = 30 }).GeneratedTokens, kept.Tokens);
        AssertNoLeaks(engine);
    }
}
