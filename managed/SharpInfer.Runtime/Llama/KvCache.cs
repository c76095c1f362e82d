// KvCache.cs: the contiguous per-sequence K/V cache of the single-sequence forward path:
// per layer, [capacity, n_kv_heads, head_dim] f32 for K and for V. (The paged, shared pool
// of the batching engine replaces this when paged attention lands.)
using SharpInfer.Tensors;

namespace SharpInfer.Llama;

public sealed class KvCache : IDisposable
{
    private readonly HostBuffer<float>[] _keys;
    private readonly HostBuffer<float>[] _values;

    /// <summary>Tokens the cache can hold.</summary>
    public int Capacity { get; }
    /// <summary>Tokens already written (the next token's position).</summary>
    public int Length { get; internal set; }
    /// <summary>Floats per token per layer: n_kv_heads * head_dim.</summary>
    public int RowSize { get; }

    internal KvCache(int layers, int capacity, int rowSize)
    {
        Capacity = capacity;
        RowSize = rowSize;
        _keys = new HostBuffer<float>[layers];
        _values = new HostBuffer<float>[layers];
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = new HostBuffer<float>((long)capacity * rowSize);
            _values[l] = new HostBuffer<float>((long)capacity * rowSize);
        }
    }

    internal HostBuffer<float> Keys(int layer) => _keys[layer];
    internal HostBuffer<float> Values(int layer) => _values[layer];

    /// <summary>Forgets every token (the memory is reused).</summary>
    public void Clear() => Length = 0;

    public void Dispose()
    {
        foreach (var buffer in _keys) buffer.Dispose();
        foreach (var buffer in _values) buffer.Dispose();
    }
}
