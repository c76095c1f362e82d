// WeightTensor.cs: one dense weight tensor of a loaded checkpoint: name, dtype, shape, and a
// pointer into the memory-mapped file (valid until the owning ModelCheckpoint is disposed).
namespace SharpInfer.Models;

/// <summary>
/// A dense weight tensor living inside a memory-mapped checkpoint file. Shape is row-major,
/// outermost first: a linear weight is [out_features, in_features].
/// </summary>
public sealed unsafe class WeightTensor
{
    private readonly MappedFile _owner;

    internal WeightTensor(string name, TensorDType dtype, long[] shape, MappedFile owner, long fileOffset, long byteLength)
    {
        Name = name;
        DType = dtype;
        Shape = shape;
        _owner = owner;
        FileOffset = fileOffset;
        ByteLength = byteLength;
    }

    /// <summary>Canonical (llama.cpp-style) name, e.g. <c>blk.0.attn_q.weight</c>.</summary>
    public string Name { get; }

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
    public string SourceFile => _owner.Path;

    /// <summary>Byte offset of the data inside <see cref="SourceFile"/>.</summary>
    public long FileOffset { get; }

    public long ByteLength { get; }

    /// <summary>Pointer to the first byte, inside the memory map; valid until the checkpoint is disposed.</summary>
    public nint Data => (nint)(_owner.Base + FileOffset);

    /// <summary>The raw little-endian bytes. Tensors over 2 GiB must be read through <see cref="Data"/>.</summary>
    public ReadOnlySpan<byte> Bytes
    {
        get
        {
            if (ByteLength > int.MaxValue)
                throw new InvalidOperationException($"tensor {Name} is {ByteLength} bytes, too large for a span; use Data");
            return _owner.Span(FileOffset, (int)ByteLength);
        }
    }

    /// <summary>A float32 copy of the values (converted from F16/BF16 when needed).</summary>
    public float[] ToFloat32()
    {
        long count = ElementCount;
        if (count > Array.MaxLength)
            throw new InvalidOperationException($"tensor {Name} has {count} elements, too many for one array");
        var result = new float[count];
        DType.ConvertToFloat32(Bytes, result);
        return result;
    }

    public override string ToString() => $"{Name} {DType} [{string.Join(", ", Shape)}]";
}
