// EngineOptions.cs: how an InferenceEngine sizes its KV pool and its steps.
using SharpInfer.Llama;

namespace SharpInfer.Engine;

public sealed record EngineOptions
{
    /// <summary>Blocks in the KV pool; 0 picks enough for four full-context sequences.</summary>
    public int KvBlocks { get; init; }
    /// <summary>Tokens per KV block.</summary>
    public int BlockSize { get; init; } = LlamaModel.DefaultBlockSize;
    public KvCacheDType KvCacheDType { get; init; } = KvCacheDType.F32;
    /// <summary>Most tokens one step computes (decode rows plus prefill chunks); 0 means the model's MaxBatch.</summary>
    public int MaxBatchTokens { get; init; }
    /// <summary>Most sequences holding KV blocks at once.</summary>
    public int MaxRunningSequences { get; init; } = 256;
    /// <summary>Reuse the K/V of shared prompt prefixes (full blocks) across requests.</summary>
    public bool EnablePrefixCaching { get; init; } = true;
    /// <summary>Largest MaxTokens a request may ask for; 0 means only the context bounds it.</summary>
    public int MaxTokensLimit { get; init; }

    internal void Validate()
    {
        if (KvBlocks < 0) throw new ArgumentException($"KV blocks must be >= 0 (got {KvBlocks})");
        if (BlockSize < 1) throw new ArgumentException($"block size must be >= 1 (got {BlockSize})");
        if (MaxBatchTokens < 0) throw new ArgumentException($"max batch tokens must be >= 0 (got {MaxBatchTokens})");
        if (MaxRunningSequences < 1) throw new ArgumentException($"max running sequences must be >= 1 (got {MaxRunningSequences})");
        if (MaxTokensLimit < 0) throw new ArgumentException($"max tokens limit must be >= 0 (got {MaxTokensLimit})");
    }
}
