// PagedKvCache.cs: the KV memory of a model: per layer, K and V pools of fixed-size blocks
// ([num_blocks, block_size, n_kv_heads, head_dim] in the cache dtype, plus per-(token, head)
// scales for int8) shared by every sequence. Which blocks a sequence owns is the block
// manager's business (Engine/); this class only owns the memory.
using SharpInfer.Interop;
using SharpInfer.Tensors;

namespace SharpInfer.Llama;

/// <summary>Storage of cached keys and values: f32 (exact), f16/bf16 (half the memory) or
/// int8 with a scale per token and head (a quarter, plus scales).</summary>
public enum KvCacheDType { F32 = SiDType.F32, F16 = SiDType.F16, BF16 = SiDType.BF16, Int8 = SiDType.I8 }

public sealed unsafe class PagedKvCache : IDisposable
{
    private readonly HostBuffer<byte>[] _keys, _values;
    private readonly HostBuffer<float>[]? _keyScales, _valueScales;

    public int Layers { get; }
    public int NumBlocks { get; }
    public int BlockSize { get; }
    public int NumKvHeads { get; }
    public int HeadDim { get; }
    public KvCacheDType DType { get; }
    public long BytesPerBlock { get; }

    public PagedKvCache(int layers, int numBlocks, int blockSize, int numKvHeads, int headDim, KvCacheDType dtype = KvCacheDType.F32)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(layers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(numBlocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        Layers = layers;
        NumBlocks = numBlocks;
        BlockSize = blockSize;
        NumKvHeads = numKvHeads;
        HeadDim = headDim;
        DType = dtype;
        int elementSize = dtype switch { KvCacheDType.F32 => 4, KvCacheDType.Int8 => 1, _ => 2 };
        long slots = (long)numBlocks * blockSize;
        long poolBytes = slots * numKvHeads * headDim * elementSize;
        _keys = new HostBuffer<byte>[layers];
        _values = new HostBuffer<byte>[layers];
        if (dtype == KvCacheDType.Int8)
        {
            _keyScales = new HostBuffer<float>[layers];
            _valueScales = new HostBuffer<float>[layers];
        }
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = new HostBuffer<byte>(poolBytes);
            _values[l] = new HostBuffer<byte>(poolBytes);
            if (_keyScales is not null)
            {
                _keyScales[l] = new HostBuffer<float>(slots * numKvHeads);
                _valueScales![l] = new HostBuffer<float>(slots * numKvHeads);
            }
        }
        BytesPerBlock = 2L * layers * (poolBytes / numBlocks + (_keyScales is null ? 0 : (long)blockSize * numKvHeads * 4));
    }

    /// <summary>The native description of one layer's cache.</summary>
    internal SiPagedKv Layer(int layer) => new()
    {
        KPool = _keys[layer].Pointer,
        VPool = _values[layer].Pointer,
        KScale = _keyScales is null ? null : _keyScales[layer].Pointer,
        VScale = _valueScales is null ? null : _valueScales[layer].Pointer,
        NumBlocks = NumBlocks,
        BlockSize = BlockSize,
        NumKvHeads = NumKvHeads,
        HeadDim = HeadDim,
        DType = (SiDType)DType,
    };

    public void Dispose()
    {
        foreach (var b in _keys) b.Dispose();
        foreach (var b in _values) b.Dispose();
        if (_keyScales is not null) foreach (var b in _keyScales) b.Dispose();
        if (_valueScales is not null) foreach (var b in _valueScales) b.Dispose();
    }
}
