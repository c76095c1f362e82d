// QuantizedWeight.cs: one linear weight [rows = out, cols = in] in the si_qmatmul layout: int8 or
// packed uint4 values per row, f32 scales (and offsets for int4) per row and group of columns,
// the last group of a row ragged when cols % group != 0. The bytes either live in native memory
// this object owns (repacked at load, or quantized) or point into a memory-mapped file.
using SharpInfer.Tensors;

namespace SharpInfer.Quantization;

/// <summary>Quantized weight formats. Values equal the native <c>si_weight_format</c>.</summary>
public enum QuantFormat
{
    /// <summary>int8 symmetric: w = q * scale, q in [-128, 127] (our quantizer uses [-127, 127]).</summary>
    Int8 = 0,

    /// <summary>
    /// uint4 affine: w = q * scale + offset, q in [0, 15], two per byte along a row (low nibble =
    /// even column). A symmetric int4 weight (<see cref="QuantizedWeight.IsSymmetric"/>) stores no
    /// offsets: offset = -8 * scale, i.e. w = (q - 8) * scale (GGUF Q4_0).
    /// </summary>
    Int4 = 1,
}

/// <summary>How a quantized matmul treats its input. Values equal the native <c>si_activation_mode</c>.</summary>
public enum QuantActivations
{
    /// <summary>Activations stay f32 (W8A16 / W4A16).</summary>
    Float = 0,

    /// <summary>Each activation row is quantized to int8 on the fly (W8A8; int8 weights only).</summary>
    Int8 = 1,

    /// <summary>
    /// Activations quantized to int8 on the fly per block of 32 columns, each block with its own
    /// scale (W8A8 / W4A8), as llama.cpp computes Q8_0 / Q4_0 dot products on CPUs. Needs a group
    /// size that is a multiple of 32 or covers the row.
    /// </summary>
    Int8Block32 = 2,
}

/// <summary>Names used in configs, messages and the CLI.</summary>
public static class QuantFormatNames
{
    public static string Name(this QuantFormat format) => format switch
    {
        QuantFormat.Int8 => "int8",
        QuantFormat.Int4 => "int4",
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    public static bool TryParse(string? text, out QuantFormat format)
    {
        switch (text)
        {
            case "int8": format = QuantFormat.Int8; return true;
            case "int4": format = QuantFormat.Int4; return true;
            default: format = default; return false;
        }
    }

    public static string Name(this QuantActivations activations) => activations switch
    {
        QuantActivations.Int8 => "int8",
        QuantActivations.Int8Block32 => "int8-block32",
        _ => "float",
    };
}

/// <summary>
/// A weight matrix in the layout <c>si_qmatmul</c> reads: <see cref="Rows"/> output channels, each
/// holding <see cref="Columns"/> quantized values split into groups of <see cref="GroupSize"/>
/// consecutive columns (the last group of a row is shorter when Columns % GroupSize != 0), with one
/// f32 scale (and, for affine int4, one f32 offset) per row and group. Symmetric int4 keeps no
/// offsets (offset = -8 * scale), 4 bytes less per group: 20 instead of 24 bytes per 32 weights at
/// g32, which decode streams every token.
/// </summary>
public sealed unsafe class QuantizedWeight : IDisposable
{
    private HostBuffer<byte>? _q;
    private HostBuffer<float>? _scales;
    private HostBuffer<float>? _offsets;
    private readonly object? _keepAlive;
    private bool _disposed;

    private QuantizedWeight(QuantFormat format, int rows, int columns, int groupSize, QuantActivations activations,
                            nint q, nint scales, nint offsets, object? keepAlive, bool mapped)
    {
        Format = format;
        Rows = rows;
        Columns = columns;
        GroupSize = groupSize;
        Activations = activations;
        QData = q;
        ScalesData = scales;
        OffsetsData = offsets;
        _keepAlive = keepAlive;
        IsMapped = mapped;
    }

    public QuantFormat Format { get; }

    /// <summary>Output channels (n).</summary>
    public int Rows { get; }

    /// <summary>Input channels (k).</summary>
    public int Columns { get; }

    /// <summary>Columns per group (the last group of a row may be shorter).</summary>
    public int GroupSize { get; }

    /// <summary>Groups per row: ceil(Columns / GroupSize).</summary>
    public int GroupCount => GroupCountFor(Columns, GroupSize);

    /// <summary>Columns in the last group of a row (GroupSize unless the row is ragged).</summary>
    public int LastGroupSize => Columns - (GroupCount - 1) * GroupSize;

    /// <summary>True when Columns is not a multiple of GroupSize.</summary>
    public bool IsRagged => Columns % GroupSize != 0;

    /// <summary>Activation mode the model runner uses with this weight (W8A8 when Int8).</summary>
    public QuantActivations Activations { get; private set; }

    /// <summary>The quantized values: Rows x RowBytes.</summary>
    public nint QData { get; }

    /// <summary>f32 [Rows, GroupCount].</summary>
    public nint ScalesData { get; }

    /// <summary>f32 [Rows, GroupCount] for affine Int4, else 0 (int8, and symmetric int4: offset = -8 * scale).</summary>
    public nint OffsetsData { get; }

    /// <summary>Int4 without stored offsets: w = (q - 8) * scale.</summary>
    public bool IsSymmetric => Format == QuantFormat.Int4 && OffsetsData == 0;

    /// <summary>True when the values point into a memory-mapped checkpoint instead of memory this object owns.</summary>
    public bool IsMapped { get; }

    /// <summary>Bytes of one row of quantized values.</summary>
    public long RowBytes => RowBytesFor(Format, Columns);

    /// <summary>Bytes of values, scales and offsets together.</summary>
    public long ByteLength => Rows * RowBytes + (long)Rows * GroupCount * 4 * (OffsetsData != 0 ? 2 : 1);

    public static int GroupCountFor(int columns, int groupSize) => (columns + groupSize - 1) / groupSize;

    public static long RowBytesFor(QuantFormat format, int columns) => format == QuantFormat.Int4 ? (columns + 1L) / 2 : columns;

    /// <summary>"int4 g32" / "int4 symmetric g32" / "int8 per-channel" / "int8 g128 (w8a8)".</summary>
    public string Describe() =>
        $"{Format.Name()}{(IsSymmetric ? " symmetric" : "")} {(GroupSize >= Columns ? "per-channel" : $"g{GroupSize}")}{Activations switch
        {
            QuantActivations.Int8 => " (w8a8)",
            QuantActivations.Int8Block32 => " (int8 activations per 32)",
            _ => "",
        }}";

    /// <summary>
    /// Zeroed native storage for a [rows, columns] weight; <paramref name="symmetric"/> int4 gets no
    /// offsets (offset = -8 * scale).
    /// </summary>
    public static QuantizedWeight Allocate(QuantFormat format, int rows, int columns, int groupSize,
                                           QuantActivations activations = QuantActivations.Float, bool symmetric = false)
    {
        Validate(format, rows, columns, groupSize, activations);
        if (symmetric && format != QuantFormat.Int4) throw new ArgumentException("only int4 weights have a symmetric form (int8 is always symmetric)");
        int groups = GroupCountFor(columns, groupSize);
        var q = new HostBuffer<byte>(rows * RowBytesFor(format, columns));
        var scales = new HostBuffer<float>((long)rows * groups);
        var offsets = format == QuantFormat.Int4 && !symmetric ? new HostBuffer<float>((long)rows * groups) : null;
        return new QuantizedWeight(format, rows, columns, groupSize, activations, (nint)q.Pointer, (nint)scales.Pointer,
                                   offsets is null ? 0 : (nint)offsets.Pointer, null, mapped: false)
        {
            _q = q, _scales = scales, _offsets = offsets,
        };
    }

    /// <summary>
    /// A weight whose arrays live elsewhere (a memory map), kept valid by <paramref name="keepAlive"/>'s owner.
    /// Any of the arrays may instead be given as owned native buffers.
    /// </summary>
    internal static QuantizedWeight FromExternal(QuantFormat format, int rows, int columns, int groupSize, QuantActivations activations,
                                                 nint q, nint scales, nint offsets, object? keepAlive,
                                                 HostBuffer<float>? ownedScales = null, HostBuffer<float>? ownedOffsets = null)
    {
        Validate(format, rows, columns, groupSize, activations);
        return new QuantizedWeight(format, rows, columns, groupSize, activations, q, scales, offsets, keepAlive, mapped: true)
        {
            _scales = ownedScales, _offsets = ownedOffsets,
        };
    }

    private static void Validate(QuantFormat format, int rows, int columns, int groupSize, QuantActivations activations)
    {
        if (format is not (QuantFormat.Int8 or QuantFormat.Int4)) throw new ArgumentOutOfRangeException(nameof(format));
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(groupSize, 1);
        if (activations == QuantActivations.Int8 && format != QuantFormat.Int8)
            throw new ArgumentException("int8 activations (W8A8) need int8 weights");
        CheckBlockActivations(activations, columns, groupSize);
    }

    private static void CheckBlockActivations(QuantActivations activations, int columns, int groupSize)
    {
        if (activations == QuantActivations.Int8Block32 && groupSize % 32 != 0 && groupSize < columns)
            throw new ArgumentException($"int8 activations per 32-column block need a group size that is a multiple of 32 (got {groupSize})");
    }

    /// <summary>Sets the activation mode (W8A8 is only valid for Int8).</summary>
    public void SetActivations(QuantActivations activations)
    {
        if (activations == QuantActivations.Int8 && Format != QuantFormat.Int8)
            throw new ArgumentException("int8 activations (W8A8) need int8 weights");
        CheckBlockActivations(activations, Columns, GroupSize);
        Activations = activations;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>The quantized bytes of row <paramref name="row"/> (int8 values, or packed nibbles).</summary>
    public Span<byte> RowValues(int row)
    {
        ThrowIfDisposed();
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row));
        return new Span<byte>((byte*)QData + row * RowBytes, checked((int)RowBytes));
    }

    /// <summary>The scales of row <paramref name="row"/>, one per group.</summary>
    public Span<float> RowScales(int row)
    {
        ThrowIfDisposed();
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row));
        return new Span<float>((float*)ScalesData + (long)row * GroupCount, GroupCount);
    }

    /// <summary>The offsets of row <paramref name="row"/> (affine int4 only).</summary>
    public Span<float> RowOffsets(int row)
    {
        ThrowIfDisposed();
        if (Format != QuantFormat.Int4) throw new InvalidOperationException("int8 weights have no offsets");
        if (IsSymmetric) throw new InvalidOperationException("symmetric int4 weights store no offsets (offset = -8 * scale)");
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row));
        return new Span<float>((float*)OffsetsData + (long)row * GroupCount, GroupCount);
    }

    /// <summary>The quantized integer at (row, column): int8 value or uint4 nibble.</summary>
    public int GetValue(int row, int column)
    {
        var values = RowValues(row);
        return Format == QuantFormat.Int8 ? (sbyte)values[column] : Int4Packing.Get(values, column);
    }

    /// <summary>
    /// Dequantizes one row into <paramref name="destination"/> as the kernels define it:
    /// int8 w = q * scale; int4 w = q * scale + offset (a float multiply, then a float add), with
    /// offset = -8 * scale when symmetric.
    /// </summary>
    public void DequantizeRow(int row, Span<float> destination)
    {
        if (destination.Length < Columns) throw new ArgumentException("destination too small", nameof(destination));
        var values = RowValues(row);
        var scales = RowScales(row);
        if (Format == QuantFormat.Int8)
        {
            for (int c = 0; c < Columns; c++) destination[c] = (sbyte)values[c] * scales[c / GroupSize];
        }
        else
        {
            var offsets = IsSymmetric ? default : RowOffsets(row);
            for (int c = 0; c < Columns; c++)
            {
                int g = c / GroupSize;
                float product = Int4Packing.Get(values, c) * scales[g];
                destination[c] = product + (IsSymmetric ? -8f * scales[g] : offsets[g]);
            }
        }
    }

    /// <summary>All rows dequantized to f32, row-major [Rows, Columns].</summary>
    public float[] Dequantize()
    {
        long count = (long)Rows * Columns;
        if (count > Array.MaxLength) throw new InvalidOperationException($"{count} elements are too many for one array");
        var result = new float[count];
        Parallel.For(0, Rows, r => DequantizeRow(r, result.AsSpan(r * Columns, Columns)));
        return result;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _q?.Dispose();
        _scales?.Dispose();
        _offsets?.Dispose();
        GC.KeepAlive(_keepAlive);
    }
}

/// <summary>Two uint4 values per byte along a row: column 2j in the low nibble of byte j, 2j + 1 in the high one.</summary>
public static class Int4Packing
{
    public static int Get(ReadOnlySpan<byte> row, int column)
    {
        byte b = row[column >> 1];
        return (column & 1) == 0 ? b & 0xF : b >> 4;
    }

    public static void Set(Span<byte> row, int column, int value)
    {
        if ((uint)value > 15) throw new ArgumentOutOfRangeException(nameof(value), value, "uint4 values are 0..15");
        ref byte b = ref row[column >> 1];
        b = (column & 1) == 0 ? (byte)((b & 0xF0) | value) : (byte)((b & 0x0F) | (value << 4));
    }
}
