// WeightTensor.cs: one weight tensor of a loaded checkpoint: name, dtype, shape, and either a
// pointer into the memory-mapped file (dense; valid until the owning ModelCheckpoint is disposed)
// or a quantized weight in the si_qmatmul layout (repacked at load, or mapped from our own format),
// or a pruned weight in a si_sparse_matmul layout (2:4 or bitmask).
using SharpInfer.Quantization;
using SharpInfer.Sparsity;

namespace SharpInfer.Models;

/// <summary>
/// A weight tensor of a checkpoint. Shape is row-major, outermost first: a linear weight is
/// [out_features, in_features]. Dense tensors live inside a memory-mapped file; quantized ones
/// (<see cref="IsQuantized"/>) carry a <see cref="QuantizedWeight"/> instead.
/// </summary>
public sealed unsafe class WeightTensor
{
    private readonly MappedFile? _owner;
    private readonly string _sourceFile;

    internal WeightTensor(string name, TensorDType dtype, long[] shape, MappedFile owner, long fileOffset, long byteLength)
    {
        Name = name;
        DType = dtype;
        Shape = shape;
        _owner = owner;
        _sourceFile = owner.Path;
        FileOffset = fileOffset;
        ByteLength = byteLength;
    }

    /// <summary>A quantized linear weight [Rows, Columns] read from <paramref name="sourceFile"/>.</summary>
    internal WeightTensor(string name, QuantizedWeight quantized, string sourceFile, string? sourceType = null)
    {
        Name = name;
        DType = TensorDType.F32;
        Shape = [quantized.Rows, quantized.Columns];
        Quantized = quantized;
        _sourceFile = sourceFile;
        SourceType = sourceType;
        FileOffset = -1;
        ByteLength = quantized.ByteLength;
    }

    /// <summary>A pruned linear weight [Rows, Columns] (2:4 or bitmask) read from <paramref name="sourceFile"/>.</summary>
    internal WeightTensor(string name, SparseWeight sparse, string sourceFile, string? sourceType = null)
    {
        Name = name;
        DType = sparse.ValuesDType;
        Shape = [sparse.Rows, sparse.Columns];
        Sparse = sparse;
        _sourceFile = sourceFile;
        SourceType = sourceType;
        FileOffset = -1;
        ByteLength = sparse.ByteLength;
    }

    /// <summary>The sparse (pruned) form, or null for a dense or quantized tensor.</summary>
    public SparseWeight? Sparse { get; }

    public bool IsSparse => Sparse is not null;

    /// <summary>The quantized form, or null for a dense tensor.</summary>
    public QuantizedWeight? Quantized { get; }

    public bool IsQuantized => Quantized is not null;

    /// <summary>How a quantized tensor was stored before repacking (e.g. "Q4_K", "gptq", "awq", "sharpinfer").</summary>
    public string? SourceType { get; }

    /// <summary>Canonical (llama.cpp-style) name, e.g. <c>blk.0.attn_q.weight</c>.</summary>
    public string Name { get; }

    /// <summary>Element type of a dense tensor; for a quantized one, F32 (what its values dequantize to); for a sparse one, its values' type.</summary>
    public TensorDType DType { get; }

    /// <summary>Row-major dims, outermost first ([out_features, in_features] for a linear weight).</summary>
    public long[] Shape { get; }

    /// <summary>Number of elements (product of <see cref="Shape"/>).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Shape) n *= d;
            return n;
        }
    }

    /// <summary>The file the bytes live in.</summary>
    public string SourceFile => _sourceFile;

    /// <summary>Byte offset of the data inside <see cref="SourceFile"/> (-1 for a quantized or sparse tensor).</summary>
    public long FileOffset { get; }

    public long ByteLength { get; }

    /// <summary>Pointer to the first byte, inside the memory map; valid until the checkpoint is disposed.</summary>
    public nint Data => _owner is not null ? (nint)(_owner.Base + FileOffset) : throw NotDense();

    private InvalidOperationException NotDense() => Sparse is not null
        ? new InvalidOperationException($"tensor {Name} is sparse ({Sparse.Describe()}); read it through Sparse")
        : new InvalidOperationException($"tensor {Name} is quantized ({Quantized!.Describe()}); read it through Quantized");

    /// <summary>The raw little-endian bytes. Tensors over 2 GiB must be read through <see cref="Data"/>.</summary>
    public ReadOnlySpan<byte> Bytes
    {
        get
        {
            if (_owner is null) throw NotDense();
            if (ByteLength > int.MaxValue)
                throw new InvalidOperationException($"tensor {Name} is {ByteLength} bytes, too large for a span; use Data");
            return _owner.Span(FileOffset, (int)ByteLength);
        }
    }

    /// <summary>A float32 copy of the values (converted from F16/BF16, dequantized or unpacked, when needed).</summary>
    public float[] ToFloat32()
    {
        if (Quantized is not null) return Quantized.Dequantize();
        if (Sparse is not null) return Sparse.ToDense();
        long count = ElementCount;
        if (count > Array.MaxLength)
            throw new InvalidOperationException($"tensor {Name} has {count} elements, too many for one array");
        var result = new float[count];
        DType.ConvertToFloat32(Bytes, result);
        return result;
    }

    public override string ToString() =>
        $"{Name} {(Quantized is not null ? Quantized.Describe() : Sparse is not null ? Sparse.Describe() : DType.ToString())} [{string.Join(", ", Shape)}]";
}
