// KvCache.cs: the KV cache of one sequence on its own (the single-sequence generation path):
// a private paged cache whose block table is simply 0, 1, 2, ... The batching engine
// shares one PagedKvCache between sequences instead.
using SharpInfer.Models;

namespace SharpInfer.Llama;

public sealed class KvCache : IDisposable
{
    internal PagedKvCache Pages { get; }
    internal int[] BlockTable { get; }

    /// <summary>Tokens the cache can hold.</summary>
    public int Capacity { get; }
    /// <summary>Tokens already written (the next token's position).</summary>
    public int Length { get; internal set; }
    /// <summary>Element type of the cached K and V.</summary>
    public KvCacheDType DType => Pages.DType;

    internal KvCache(LlamaConfig config, int capacity, int blockSize, KvCacheDType dtype)
    {
        Capacity = capacity;
        int blocks = (capacity + blockSize - 1) / blockSize;
        Pages = new PagedKvCache(config.NumLayers, blocks, blockSize, config.NumKvHeads, config.HeadDim, dtype);
        BlockTable = Enumerable.Range(0, blocks).ToArray();
    }

    /// <summary>Forgets every token (the memory is reused).</summary>
    public void Clear() => Length = 0;

    public void Dispose() => Pages.Dispose();
}
