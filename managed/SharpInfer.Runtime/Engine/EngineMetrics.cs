// EngineMetrics.cs: the engine's System.Diagnostics.Metrics instruments (meter "SharpInfer.Engine"):
// KV block and sequence gauges, and counters whose rates give tokens/s and the prefix-cache hit rate.
using System.Diagnostics.Metrics;

namespace SharpInfer.Engine;

internal sealed class EngineMetrics : IDisposable
{
    public const string MeterName = "SharpInfer.Engine";

    private readonly Meter _meter;
    private readonly Counter<long> _preemptions, _prefixQueries, _prefixHits, _promptComputed, _promptCached, _generated, _steps;
    private readonly Histogram<double> _stepSeconds, _timeToFirstToken;
    private EngineStats _last = new();

    /// <param name="engine">The meter's scope, so listeners can tell engines apart.</param>
    public EngineMetrics(InferenceEngine engine, Func<EngineStats> stats)
    {
        _meter = new Meter(MeterName, version: null, tags: null, scope: engine);
        _meter.CreateObservableGauge("sharpinfer.engine.kv_blocks.used", () => stats().KvBlocksUsed, "{block}", "KV blocks referenced by sequences");
        _meter.CreateObservableGauge("sharpinfer.engine.kv_blocks.free", () => stats().KvBlocksFree, "{block}", "KV blocks not referenced (cached ones included)");
        _meter.CreateObservableGauge("sharpinfer.engine.kv_blocks.cached", () => stats().KvBlocksCached, "{block}", "Free KV blocks holding a reusable prefix");
        _meter.CreateObservableGauge("sharpinfer.engine.sequences.running", () => stats().RunningSequences, "{sequence}", "Sequences holding KV blocks");
        _meter.CreateObservableGauge("sharpinfer.engine.sequences.waiting", () => stats().WaitingSequences, "{sequence}", "Sequences queued or preempted");
        _preemptions = _meter.CreateCounter<long>("sharpinfer.engine.preemptions", "{preemption}", "Sequences that lost their KV blocks and will recompute");
        _prefixQueries = _meter.CreateCounter<long>("sharpinfer.engine.prefix_cache.queries", "{token}", "Tokens looked up in the prefix cache");
        _prefixHits = _meter.CreateCounter<long>("sharpinfer.engine.prefix_cache.hits", "{token}", "Tokens found in the prefix cache");
        _promptComputed = _meter.CreateCounter<long>("sharpinfer.engine.prompt_tokens.computed", "{token}", "Prompt tokens run through the model");
        _promptCached = _meter.CreateCounter<long>("sharpinfer.engine.prompt_tokens.cached", "{token}", "Prompt tokens reused from the prefix cache");
        _generated = _meter.CreateCounter<long>("sharpinfer.engine.generated_tokens", "{token}", "Tokens generated");
        _steps = _meter.CreateCounter<long>("sharpinfer.engine.steps", "{step}", "Batched forward steps");
        _stepSeconds = _meter.CreateHistogram<double>("sharpinfer.engine.step.duration", "s", "Wall time of one step (schedule, forward, sample)");
        _timeToFirstToken = _meter.CreateHistogram<double>("sharpinfer.engine.time_to_first_token", "s", "Submission to first generated token");
    }

    /// <summary>Adds the counter increments since the previous snapshot.</summary>
    public void Publish(EngineStats now)
    {
        Add(_preemptions, now.Preemptions - _last.Preemptions);
        Add(_prefixQueries, now.PrefixCacheQueryTokens - _last.PrefixCacheQueryTokens);
        Add(_prefixHits, now.PrefixCacheHitTokens - _last.PrefixCacheHitTokens);
        Add(_promptComputed, now.PromptTokensComputed - _last.PromptTokensComputed);
        Add(_promptCached, now.PromptTokensCached - _last.PromptTokensCached);
        Add(_generated, now.GeneratedTokens - _last.GeneratedTokens);
        Add(_steps, now.Steps - _last.Steps);
        _last = now;
    }

    public void RecordStep(TimeSpan elapsed) => _stepSeconds.Record(elapsed.TotalSeconds);
    public void RecordTimeToFirstToken(TimeSpan elapsed) => _timeToFirstToken.Record(elapsed.TotalSeconds);

    private static void Add(Counter<long> counter, long delta)
    {
        if (delta > 0) counter.Add(delta);
    }

    public void Dispose() => _meter.Dispose();
}
