// EngineStats.cs: a consistent snapshot of an InferenceEngine's counters, safe to read from any thread.
namespace SharpInfer.Engine;

public sealed record EngineStats
{
    public int RunningSequences { get; init; }
    public int WaitingSequences { get; init; }
    public int KvBlocksTotal { get; init; }
    /// <summary>Blocks referenced by a sequence.</summary>
    public int KvBlocksUsed { get; init; }
    /// <summary>Blocks no sequence references (cached ones included): equals KvBlocksTotal when idle.</summary>
    public int KvBlocksFree { get; init; }
    /// <summary>Free blocks that still hold a reusable prefix.</summary>
    public int KvBlocksCached { get; init; }
    public long Preemptions { get; init; }
    /// <summary>Tokens looked up in the prefix cache at admissions, and how many were reused.</summary>
    public long PrefixCacheQueryTokens { get; init; }
    public long PrefixCacheHitTokens { get; init; }
    public double PrefixCacheHitRate => PrefixCacheQueryTokens == 0 ? 0 : (double)PrefixCacheHitTokens / PrefixCacheQueryTokens;
    /// <summary>Prompt positions run through the model (recomputation included) and reused from the cache.</summary>
    public long PromptTokensComputed { get; init; }
    public long PromptTokensCached { get; init; }
    public long GeneratedTokens { get; init; }
    public long Steps { get; init; }
    public long CompletedRequests { get; init; }
}
