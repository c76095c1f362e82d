// BatchModelRunner.cs: what the engine needs from a model: one batched forward step over a shared
// paged KV pool. The real one is a LlamaModel with its PagedKvCache; tests plug in fakes.
using SharpInfer.Llama;

namespace SharpInfer.Engine;

/// <summary>Runs one step described by a BatchPlan, reading and writing the KV pool it owns.</summary>
internal interface IBatchForward
{
    int VocabSize { get; }
    /// <summary>Most tokens one step may hold.</summary>
    int MaxBatch { get; }
    /// <summary>Most positions a sequence may have.</summary>
    int MaxContext { get; }
    /// <summary>Blocks in the KV pool, and tokens per block.</summary>
    int NumBlocks { get; }
    int BlockSize { get; }
    /// <summary>Writes logits for the plan's logit rows ([plan.LogitRowCount, VocabSize], in row order).</summary>
    void Forward(BatchPlan plan, Span<float> logits);
}

/// <summary>A LlamaModel and the KV pool it runs over (the pool is owned and disposed here).</summary>
internal sealed class BatchModelRunner(LlamaModel model, PagedKvCache cache) : IBatchForward, IDisposable
{
    public int VocabSize => model.VocabSize;
    public int MaxBatch => model.MaxBatch;
    public int MaxContext => model.Config.MaxContext;
    public int NumBlocks => cache.NumBlocks;
    public int BlockSize => cache.BlockSize;

    public void Forward(BatchPlan plan, Span<float> logits) => model.Forward(plan, cache, logits);

    public void Dispose() => cache.Dispose();
}
