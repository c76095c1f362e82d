// InferenceEngineTests.cs: the engine over a fake paged model (no kernels needed): concurrent
// requests equal sequential ones and an independent oracle, preemption under a shrunken pool,
// prefix-cache reuse, cancellation, validation, failures, logprobs and metrics; the KV pool
// returns to full after every test.
using System.Diagnostics.Metrics;
using SharpInfer.Engine;

namespace SharpInfer.Tests.Engine;

public class InferenceEngineTests
{
    private const int Vocab = 300;

    private static InferenceEngine Create(FakePagedModel model, EngineOptions? options = null) =>
        new(model, FakePagedModel.Tokenizer(Vocab), options);

    private static int[] Prompt(int length, int seed) =>
        [1, .. Enumerable.Range(0, length - 1).Select(i => 3 + (i * 31 + seed * 17) % (Vocab - 3))];

    private static void AssertNoLeaks(InferenceEngine engine)
    {
        var stats = engine.Stats;
        Assert.Equal(0, stats.RunningSequences);
        Assert.Equal(0, stats.WaitingSequences);
        Assert.Equal(0, stats.KvBlocksUsed);
        Assert.Equal(stats.KvBlocksTotal, stats.KvBlocksFree);
        engine.BlockManager.CheckConsistency();
    }

    private static SamplingParams Greedy(int maxTokens) => SamplingParams.Greedy with { MaxTokens = maxTokens };

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(16)]
    public async Task ConcurrentGreedyRequests_EqualSequentialOnes_AndTheOracle(int n)
    {
        var prompts = Enumerable.Range(0, n).Select(i => Prompt(2 + i * 7 % 23, seed: i)).ToArray();
        int MaxTokens(int i) => 5 + i % 9;

        var sequentialModel = new FakePagedModel(numBlocks: 64, maxBatch: 16);
        using var sequentialEngine = Create(sequentialModel);
        var sequential = new List<Completion>();
        for (int i = 0; i < n; i++)
            sequential.Add(await Completion.CollectAsync(sequentialEngine.GenerateAsync(prompts[i], Greedy(MaxTokens(i)))));

        var model = new FakePagedModel(numBlocks: 256, maxBatch: 16);
        using var engine = Create(model);
        var concurrent = await Task.WhenAll(Enumerable.Range(0, n).Select(i =>
            Task.Run(() => Completion.CollectAsync(engine.GenerateAsync(prompts[i], Greedy(MaxTokens(i)))))));

        for (int i = 0; i < n; i++)
        {
            Assert.Equal(FakePagedModel.GreedyOracle(prompts[i], MaxTokens(i), Vocab), sequential[i].Tokens);
            Assert.Equal(sequential[i].Tokens, concurrent[i].Tokens);
            Assert.Equal(sequential[i].Text, concurrent[i].Text);
            Assert.Equal(FinishReason.Length, concurrent[i].Reason);
            Assert.Equal(new GenerationUsage(prompts[i].Length, MaxTokens(i), concurrent[i].Usage.CachedPromptTokens), concurrent[i].Usage);
        }
        if (n > 1) Assert.True(model.MaxSequencesInAStep > 1, "requests should have shared steps");
        AssertNoLeaks(engine);
        AssertNoLeaks(sequentialEngine);
    }

    [Fact]
    public async Task AShrunkenPool_ForcesPreemption_AndStillCompletesEveryRequestIdentically()
    {
        var prompts = Enumerable.Range(0, 8).Select(i => Prompt(6 + i * 3, seed: 100 + i)).ToArray();
        // 12 blocks of 4 tokens: each request needs at most 11, eight at once cannot fit.
        var model = new FakePagedModel(numBlocks: 12, blockSize: 4, maxBatch: 16);
        using var engine = Create(model);
        var results = await Task.WhenAll(prompts.Select((p, i) =>
            Task.Run(() => Completion.CollectAsync(engine.GenerateAsync(p, Greedy(20), priority: i % 2)))));

        Assert.True(engine.Stats.Preemptions > 0, "the pool was meant to force preemption");
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(FakePagedModel.GreedyOracle(prompts[i], 20, Vocab), results[i].Tokens);
        AssertNoLeaks(engine);
    }

    [Fact]
    public async Task SharedPrefixes_AreServedFromTheCache_AndComputeLess()
    {
        int[] system = Prompt(40, seed: 7);
        int[] Ask(int seed) => [.. system, .. Prompt(6, seed)[1..]];
        var model = new FakePagedModel(numBlocks: 128, blockSize: 4);
        using var engine = Create(model);

        var first = await Completion.CollectAsync(engine.GenerateAsync(Ask(1), Greedy(4)));
        Assert.Equal(0, first.Usage.CachedPromptTokens);
        long computedAfterFirst = engine.Stats.PromptTokensComputed;
        Assert.Equal(45, computedAfterFirst);

        var second = await Completion.CollectAsync(engine.GenerateAsync(Ask(2), Greedy(4)));
        Assert.Equal(40, second.Usage.CachedPromptTokens);      // the 10 full blocks of the shared part
        Assert.Equal(5, engine.Stats.PromptTokensComputed - computedAfterFirst);
        Assert.Equal(40, engine.Stats.PromptTokensCached);
        Assert.True(engine.Stats.PrefixCacheHitRate > 0.4);
        Assert.Equal(FakePagedModel.GreedyOracle(Ask(2), 4, Vocab), second.Tokens);
        AssertNoLeaks(engine);
        Assert.True(engine.Stats.KvBlocksCached >= 10);
    }

    [Fact]
    public async Task Cancellation_FreesTheBlocks_BeforeTheEnumerationEnds()
    {
        var model = new FakePagedModel(numBlocks: 64);
        model.OnStep = _ => Thread.Sleep(2);
        using var engine = Create(model);
        using var cts = new CancellationTokenSource();
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var d in engine.GenerateAsync(Prompt(10, 1), Greedy(200), cts.Token))
                if (++seen == 3) cts.Cancel();
        });
        AssertNoLeaks(engine);

        // Leaving an enumeration early cancels too.
        await foreach (var d in engine.GenerateAsync(Prompt(10, 2), Greedy(200)))
            break;
        AssertNoLeaks(engine);

        // An already-cancelled token queues nothing.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Completion.CollectAsync(engine.GenerateAsync(Prompt(5, 3), Greedy(5), cts.Token)));
        AssertNoLeaks(engine);

        // The engine still serves others afterwards.
        var ok = await Completion.CollectAsync(engine.GenerateAsync(Prompt(5, 3), Greedy(5)));
        Assert.Equal(5, ok.Tokens.Length);
        AssertNoLeaks(engine);
    }

    [Fact]
    public void BadInput_ThrowsArgumentException_AndQueuesNothing()
    {
        var model = new FakePagedModel(numBlocks: 16, blockSize: 4, maxContext: 48);
        using var engine = Create(model);
        int[] ok = Prompt(8, 1);
        Assert.Throws<ArgumentException>(() => engine.GenerateAsync(Prompt(49, 1), Greedy(1)));                           // over the context
        Assert.Throws<ArgumentException>(() => engine.GenerateAsync(ok, Greedy(41)));                                      // max tokens over the limit
        Assert.Throws<ArgumentException>(() => engine.GenerateAsync(ok, SamplingParams.Greedy with { Temperature = -1 }));
        Assert.Throws<ArgumentException>(() => engine.GenerateAsync(ok, SamplingParams.Greedy with { TopP = 0 }));
        Assert.Throws<ArgumentException>(() => engine.GenerateAsync(ok, SamplingParams.Greedy with { TopP = 1.5f }));
        Assert.Throws<ArgumentException>(() => engine.GenerateAsync(ok, SamplingParams.Greedy with { FrequencyPenalty = 3 }));
        Assert.Throws<ArgumentException>(() => engine.GenerateAsync(ok, SamplingParams.Greedy with { LogitBias = new Dictionary<int, float> { [Vocab] = 1 } }));
        Assert.Throws<ArgumentException>(() => engine.GenerateAsync([], Greedy(1)));
        Assert.Throws<ArgumentException>(() => engine.GenerateAsync([Vocab], Greedy(1)));
        Assert.Throws<ArgumentNullException>(() => engine.GenerateAsync(ok, null!));
        Assert.Equal(0, engine.Stats.WaitingSequences + engine.Stats.RunningSequences);
        Assert.Equal(0L, engine.Stats.Steps);

        using var small = Create(new FakePagedModel(numBlocks: 3, blockSize: 4, maxContext: 48));
        var e = Assert.Throws<ArgumentException>(() => small.GenerateAsync(ok, Greedy(10)));  // needs 5 blocks of 3
        Assert.Contains("KV blocks", e.Message);
    }

    [Fact]
    public async Task AFailingStep_FailsItsRequests_FreesTheirBlocks_AndTheEngineCarriesOn()
    {
        var model = new FakePagedModel(numBlocks: 64);
        bool fail = true;
        model.OnStep = _ => { if (fail) throw new NotSupportedException("kernel missing"); };
        using var engine = Create(model);
        var e = await Assert.ThrowsAsync<NotSupportedException>(() => Completion.CollectAsync(engine.GenerateAsync(Prompt(9, 1), Greedy(4))));
        Assert.Equal("kernel missing", e.Message);
        AssertNoLeaks(engine);
        fail = false;
        var ok = await Completion.CollectAsync(engine.GenerateAsync(Prompt(9, 1), Greedy(4)));
        Assert.Equal(FakePagedModel.GreedyOracle(Prompt(9, 1), 4, Vocab), ok.Tokens);
    }

    [Fact]
    public async Task StopStrings_Eos_ZeroMaxTokens_AndLogprobs()
    {
        var model = new FakePagedModel(numBlocks: 64);
        using var engine = Create(model);
        var tokenizer = engine.Tokenizer;
        int[] prompt = Prompt(6, 4);

        var full = await Completion.CollectAsync(engine.GenerateAsync(prompt, Greedy(12) with { Logprobs = true, TopLogprobs = 3 }));
        var logprobs = full.Deltas.Where(d => !d.IsFinal).Select(d => Assert.Single(d.Logprobs!)).ToArray();
        Assert.Equal(full.Tokens, logprobs.Select(l => l.TokenId));
        foreach (var l in logprobs)
        {
            Assert.Equal(3, l.TopAlternatives.Count);
            Assert.Equal(l.TokenId, l.TopAlternatives[0].TokenId);   // greedy picks the most likely
            Assert.Equal(l.Logprob, l.TopAlternatives[0].Logprob);
            Assert.True(l.Logprob < 0 && l.TopAlternatives[1].Logprob <= l.Logprob);
        }

        // A stop string taken from the middle of the greedy text cuts it there.
        string stop = full.Text.Substring(full.Text.Length / 2, 2);
        var stopped = await Completion.CollectAsync(engine.GenerateAsync(prompt, Greedy(12) with { StopStrings = [stop] }));
        Assert.Equal(FinishReason.StopString, stopped.Reason);
        Assert.Equal(full.Text[..full.Text.IndexOf(stop, StringComparison.Ordinal)], stopped.Text);

        // EOS ends the request without being emitted.
        var banned = await Completion.CollectAsync(engine.GenerateAsync(prompt,
            Greedy(12) with { LogitBias = new Dictionary<int, float> { [tokenizer.EosId] = 100 } }));
        Assert.Equal(FinishReason.EndOfSequence, banned.Reason);
        Assert.Empty(banned.Tokens);
        Assert.Equal(0, banned.Usage.CompletionTokens);

        var none = await Completion.CollectAsync(engine.GenerateAsync(prompt, Greedy(0)));
        Assert.Equal((FinishReason.Length, 0, ""), (none.Reason, none.Tokens.Length, none.Text));
        AssertNoLeaks(engine);
    }

    [Fact]
    public async Task SeededSampling_IsReproducible_EvenWhenBatchedAndPreempted()
    {
        var sampled = new SamplingParams { Temperature = 0.8f, TopK = 50, TopP = 0.95f, Seed = 11, MaxTokens = 16, FrequencyPenalty = 0.5f, PresencePenalty = 0.2f };
        int[][] prompts = [.. Enumerable.Range(0, 6).Select(i => Prompt(5 + i, 200 + i))];
        using var alone = Create(new FakePagedModel(numBlocks: 64));
        var expected = new List<int[]>();
        foreach (var p in prompts) expected.Add((await Completion.CollectAsync(alone.GenerateAsync(p, sampled))).Tokens);

        using var crowded = Create(new FakePagedModel(numBlocks: 10, blockSize: 4));
        var results = await Task.WhenAll(prompts.Select(p => Task.Run(() => Completion.CollectAsync(crowded.GenerateAsync(p, sampled)))));
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(expected[i], results[i].Tokens);
        AssertNoLeaks(crowded);
    }

    [Fact]
    public async Task Metrics_ArePublishedOnTheEngineMeter()
    {
        var totals = new Dictionary<string, long>();
        InferenceEngine? engine = null;  // other tests' engines publish on meters of the same name
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "SharpInfer.Engine") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (!ReferenceEquals(instrument.Meter.Scope, engine)) return;
            lock (totals) totals[instrument.Name] = totals.GetValueOrDefault(instrument.Name) + value;
        });
        listener.SetMeasurementEventCallback<int>((instrument, value, _, _) =>
        {
            if (!ReferenceEquals(instrument.Meter.Scope, engine)) return;
            lock (totals) totals[instrument.Name] = value;
        });
        listener.Start();

        engine = Create(new FakePagedModel(numBlocks: 64));
        using var disposeEngine = engine;
        int[] prompt = Prompt(13, 5);
        await Completion.CollectAsync(engine.GenerateAsync(prompt, Greedy(3)));
        await Completion.CollectAsync(engine.GenerateAsync(prompt, Greedy(3)));
        listener.RecordObservableInstruments();

        lock (totals)
        {
            Assert.Equal(6, totals["sharpinfer.engine.generated_tokens"]);
            Assert.Equal(12, totals["sharpinfer.engine.prefix_cache.hits"]);
            Assert.Equal(26, totals["sharpinfer.engine.prefix_cache.queries"]);
            Assert.Equal(13 + 1, totals["sharpinfer.engine.prompt_tokens.computed"]);
            Assert.Equal(0, totals["sharpinfer.engine.kv_blocks.used"]);
            Assert.Equal(64, totals["sharpinfer.engine.kv_blocks.free"]);
            Assert.Equal(0, totals["sharpinfer.engine.sequences.running"]);
        }
    }

    [Fact]
    public async Task Dispose_EndsRunningRequests_AndRefusesNewOnes()
    {
        var model = new FakePagedModel(numBlocks: 64);
        model.OnStep = _ => Thread.Sleep(5);
        var engine = Create(model);
        var running = Completion.CollectAsync(engine.GenerateAsync(Prompt(5, 1), Greedy(200)));
        await Task.Delay(20);
        engine.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => running);
        Assert.Throws<ObjectDisposedException>(() => engine.GenerateAsync(Prompt(5, 1), Greedy(2)));
    }
}
