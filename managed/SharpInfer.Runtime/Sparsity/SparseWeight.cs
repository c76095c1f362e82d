// SparseWeight.cs: one pruned linear weight [rows = out, columns = in] in a si_sparse_matmul layout
// (2:4 or bitmask, see SparsePacking), its kept values in f32/f16/bf16. The arrays either live in
// native memory this object owns (packed at prune or load time) or point into a memory-mapped
// checkpoint, checked once by Validate because the kernels trust them.
using System.Runtime.InteropServices;
using SharpInfer.Models;
using SharpInfer.Tensors;

namespace SharpInfer.Sparsity;

/// <summary>Sparse weight layouts. Values equal the native <c>si_sparse_format</c>.</summary>
public enum SparseFormat
{
    /// <summary>Semi-structured: at most 2 non-zeros in every 4 consecutive input columns.</summary>
    TwoFour = 0,

    /// <summary>Unstructured: a bitmask of kept columns per row plus the kept values.</summary>
    Bitmask = 1,
}

public static class SparseFormatNames
{
    /// <summary>"2:4" or "bitmask", as configs and messages spell them.</summary>
    public static string Name(this SparseFormat format) => format switch
    {
        SparseFormat.TwoFour => "2:4",
        SparseFormat.Bitmask => "bitmask",
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    public static bool TryParse(string? text, out SparseFormat format)
    {
        switch (text)
        {
            case "2:4": format = SparseFormat.TwoFour; return true;
            case "bitmask": format = SparseFormat.Bitmask; return true;
            default: format = default; return false;
        }
    }
}

public sealed unsafe class SparseWeight : IDisposable
{
    private readonly List<IDisposable> _owned = [];
    private readonly object? _keepAlive;
    private bool _disposed;

    private SparseWeight(SparseFormat format, int rows, int columns, TensorDType valuesDType, nint values, long valueCount,
                         nint index, nint rowOffsets, object? keepAlive)
    {
        Format = format;
        Rows = rows;
        Columns = columns;
        ValuesDType = valuesDType;
        Values = values;
        ValueCount = valueCount;
        Index = index;
        RowOffsets = rowOffsets;
        _keepAlive = keepAlive;
    }

    public SparseFormat Format { get; }

    /// <summary>Output channels (n).</summary>
    public int Rows { get; }

    /// <summary>Input channels (k).</summary>
    public int Columns { get; }

    /// <summary>Element type of the kept values (F32, F16 or BF16).</summary>
    public TensorDType ValuesDType { get; }

    /// <summary>The kept values: 2:4 [Rows, kp/2]; bitmask [ValueCount] in row order.</summary>
    public nint Values { get; }

    /// <summary>Number of stored values (2:4 includes the kept zeros of sparse groups and padding).</summary>
    public long ValueCount { get; }

    /// <summary>2:4: uint16 [Rows, kp/16]; bitmask: uint64 [Rows, ceil(Columns/64)].</summary>
    public nint Index { get; }

    /// <summary>bitmask: int64 [Rows + 1]; 2:4: 0.</summary>
    public nint RowOffsets { get; }

    /// <summary>When the weight was packed at load from a dense tensor of the same dtype, that tensor (used as the dense fallback without a copy).</summary>
    public nint DenseSource { get; private init; }

    public long IndexLength => Format == SparseFormat.TwoFour
        ? (long)Rows * SparsePacking.TwoFourMetaPerRow(Columns) : (long)Rows * SparsePacking.MaskWordsPerRow(Columns);

    /// <summary>Bytes of values, metadata and row offsets together.</summary>
    public long ByteLength => ValueCount * ValuesDType.ElementSize()
        + (Format == SparseFormat.TwoFour ? IndexLength * 2 : IndexLength * 8 + (Rows + 1L) * 8);

    /// <summary>Bytes of the same weight stored dense in <see cref="ValuesDType"/>.</summary>
    public long DenseByteLength => (long)Rows * Columns * ValuesDType.ElementSize();

    /// <summary>Fraction of zero weights: 0.5 for 2:4 (its nominal), else 1 - kept / (rows x columns).</summary>
    public double Sparsity => Format == SparseFormat.TwoFour ? 0.5 : 1.0 - (double)ValueCount / ((double)Rows * Columns);

    /// <summary>"2:4 f32" or "bitmask 70% bf16".</summary>
    public string Describe() => Format == SparseFormat.TwoFour
        ? $"2:4 {ValuesDType.ToString().ToLowerInvariant()}"
        : $"bitmask {100 * Sparsity:F0}% {ValuesDType.ToString().ToLowerInvariant()}";

    // ---- packing -------------------------------------------------------------------------------------

    /// <summary>
    /// Packs a pruned dense weight [rows, columns] (row-major f32) into <paramref name="format"/>, values
    /// stored in <paramref name="valuesDType"/> (exact when the weights came from that dtype). For 2:4,
    /// a group with more than 2 non-zeros is a <see cref="ModelFormatException"/> naming
    /// <paramref name="tensorName"/> (and <paramref name="sourcePath"/> when given).
    /// </summary>
    public static SparseWeight Pack(string tensorName, ReadOnlySpan<float> dense, int rows, int columns, SparseFormat format,
                                    TensorDType valuesDType = TensorDType.F32, string? sourcePath = null)
    {
        CheckShape(rows, columns, valuesDType);
        if (dense.Length < (long)rows * columns) throw new ArgumentException($"{dense.Length} values do not fill [{rows}, {columns}]", nameof(dense));
        int size = valuesDType.ElementSize();
        if (format == SparseFormat.TwoFour)
        {
            int perRow = SparsePacking.TwoFourValuesPerRow(columns), metaPerRow = SparsePacking.TwoFourMetaPerRow(columns);
            var values = new HostBuffer<byte>((long)rows * perRow * size);
            var meta = new HostBuffer<ushort>((long)rows * metaPerRow);
            var rowValues = new float[perRow];
            for (int r = 0; r < rows; r++)
            {
                var row = dense.Slice(r * columns, columns);
                int bad = SparsePacking.PackTwoFourRow(row, rowValues, meta.AsSpan((long)r * metaPerRow, metaPerRow));
                if (bad >= 0)
                {
                    values.Dispose();
                    meta.Dispose();
                    throw new ModelFormatException(sourcePath,
                        $"tensor '{tensorName}' is declared 2:4 but is not: row {r}, columns {bad}..{Math.Min(bad + 3, columns - 1)} hold " +
                        $"{SparsePacking.CountNonZeros(row.Slice(bad, Math.Min(4, columns - bad)))} non-zeros (2:4 allows at most 2 in every group of 4)");
                }
                Store(rowValues, valuesDType, new Span<byte>(values.Pointer + (long)r * perRow * size, perRow * size));
            }
            var w = new SparseWeight(format, rows, columns, valuesDType, (nint)values.Pointer, (long)rows * perRow, (nint)meta.Pointer, 0, null);
            w._owned.Add(values);
            w._owned.Add(meta);
            return w;
        }
        else
        {
            int words = SparsePacking.MaskWordsPerRow(columns);
            var offsets = new HostBuffer<long>(rows + 1L);
            long* off = offsets.Pointer;
            off[0] = 0;
            for (int r = 0; r < rows; r++) off[r + 1] = off[r] + SparsePacking.CountNonZeros(dense.Slice(r * columns, columns));
            var mask = new HostBuffer<ulong>((long)rows * words);
            var values = new HostBuffer<byte>(off[rows] * size);
            var rowValues = new float[columns];
            for (int r = 0; r < rows; r++)
            {
                int kept = (int)(off[r + 1] - off[r]);
                SparsePacking.PackBitmaskRow(dense.Slice(r * columns, columns), mask.AsSpan((long)r * words, words), rowValues);
                Store(rowValues.AsSpan(0, kept), valuesDType, new Span<byte>(values.Pointer + off[r] * size, kept * size));
            }
            var w = new SparseWeight(format, rows, columns, valuesDType, (nint)values.Pointer, off[rows], (nint)mask.Pointer, (nint)offsets.Pointer, null);
            w._owned.Add(values);
            w._owned.Add(mask);
            w._owned.Add(offsets);
            return w;
        }
    }

    /// <summary>Packs a dense tensor in place of its memory-mapped original, which stays the dense fallback.</summary>
    internal static SparseWeight PackFromDense(WeightTensor tensor, string tensorName, SparseFormat format)
    {
        float[] dense = tensor.ToFloat32();
        var packed = Pack(tensorName, dense, (int)tensor.Shape[0], (int)tensor.Shape[1], format, tensor.DType, tensor.SourceFile);
        var result = new SparseWeight(packed.Format, packed.Rows, packed.Columns, packed.ValuesDType, packed.Values, packed.ValueCount,
                                      packed.Index, packed.RowOffsets, null) { DenseSource = tensor.Data };
        result._owned.AddRange(packed._owned);
        packed._owned.Clear();
        return result;
    }

    /// <summary>
    /// A weight whose arrays live elsewhere (a memory map kept valid by <paramref name="keepAlive"/>).
    /// Call <see cref="Validate"/> before handing it to a kernel.
    /// </summary>
    internal static SparseWeight FromExternal(SparseFormat format, int rows, int columns, TensorDType valuesDType,
                                              nint values, long valueCount, nint index, nint rowOffsets, object? keepAlive,
                                              IEnumerable<IDisposable>? ownedCopies = null)
    {
        CheckShape(rows, columns, valuesDType);
        var w = new SparseWeight(format, rows, columns, valuesDType, values, valueCount, index, rowOffsets, keepAlive);
        if (ownedCopies is not null) w._owned.AddRange(ownedCopies);
        return w;
    }

    private static void CheckShape(int rows, int columns, TensorDType valuesDType)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        if (valuesDType is not (TensorDType.F32 or TensorDType.F16 or TensorDType.BF16))
            throw new ArgumentOutOfRangeException(nameof(valuesDType), valuesDType, "sparse values are F32, F16 or BF16");
    }

    /// <summary>
    /// Checks the metadata against the shape (the kernels trust it): 2:4 codes name two increasing
    /// positions and padding keeps zeros; bitmask tail bits are clear, row offsets start at 0 and step
    /// by each row's popcount, and end at the value count. Errors are <see cref="ModelFormatException"/>s
    /// naming <paramref name="indexName"/> / <paramref name="offsetsName"/>.
    /// </summary>
    public void Validate(string indexName, string? offsetsName = null, string? sourcePath = null, string? valuesName = null)
    {
        ThrowIfDisposed();
        if (Format == SparseFormat.TwoFour)
        {
            int metaPerRow = SparsePacking.TwoFourMetaPerRow(Columns), perRow = SparsePacking.TwoFourValuesPerRow(Columns);
            if (ValueCount != (long)Rows * perRow)
                throw new ModelFormatException(sourcePath, $"tensor '{valuesName ?? "values"}' holds {ValueCount} values, but 2:4 [{Rows}, {Columns}] needs {Rows} x {perRow}");
            var row = new float[perRow];
            for (int r = 0; r < Rows; r++)
            {
                var meta = new ReadOnlySpan<ushort>((ushort*)Index + (long)r * metaPerRow, metaPerRow);
                int bad = SparsePacking.FindBadTwoFourGroup(meta, Columns);
                if (bad >= 0)
                {
                    int code = (meta[bad >> 2] >> (4 * (bad & 3))) & 0xF;
                    throw new ModelFormatException(sourcePath,
                        $"tensor '{indexName}' is not valid 2:4 metadata: row {r}, group {bad} (columns {4 * bad}..{4 * bad + 3}) names positions " +
                        $"{code & 3} and {code >> 2}; each group must name two different positions, the first lower");
                }
                if (SparsePacking.PaddedColumns(Columns) == Columns) continue;
                // Padding columns (>= Columns) must hold zeros: the kernels multiply them by x's padding.
                ReadValues(r * (long)perRow, row);
                for (int g = Columns / 4; g < perRow / 2; g++)
                {
                    int code = (meta[g >> 2] >> (4 * (g & 3))) & 0xF;
                    if (4 * g + (code & 3) >= Columns && row[2 * g] != 0 || 4 * g + (code >> 2) >= Columns && row[2 * g + 1] != 0)
                        throw new ModelFormatException(sourcePath,
                            $"tensor '{valuesName ?? indexName}' keeps a non-zero value past column {Columns} (row {r}, group {g}): the 2:4 padding must be zero");
                }
            }
        }
        else
        {
            int words = SparsePacking.MaskWordsPerRow(Columns);
            long* off = (long*)RowOffsets;
            string offName = offsetsName ?? "row offsets";
            if (off[0] != 0)
                throw new ModelFormatException(sourcePath, $"tensor '{offName}' starts at {off[0]}, not 0");
            for (int r = 0; r < Rows; r++)
            {
                var mask = new ReadOnlySpan<ulong>((ulong*)Index + (long)r * words, words);
                if (!SparsePacking.MaskTailIsClear(mask, Columns))
                    throw new ModelFormatException(sourcePath, $"tensor '{indexName}' keeps columns past {Columns} in row {r}: the mask disagrees with the shape [{Rows}, {Columns}]");
                long kept = SparsePacking.PopCount(mask), stated = off[r + 1] - off[r];
                if (kept != stated)
                    throw new ModelFormatException(sourcePath,
                        $"tensor '{offName}' disagrees with '{indexName}': row {r} spans {stated} values ([{off[r]}, {off[r + 1]})) but its mask keeps {kept}");
            }
            if (off[Rows] != ValueCount)
                throw new ModelFormatException(sourcePath, $"tensor '{offName}' ends at {off[Rows]}, but '{valuesName ?? "values"}' holds {ValueCount} values");
        }
    }

    // ---- reading back ---------------------------------------------------------------------------------

    /// <summary>Dense row <paramref name="row"/> as f32 (columns not kept are 0).</summary>
    public void UnpackRow(int row, Span<float> destination)
    {
        ThrowIfDisposed();
        if ((uint)row >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(row));
        if (destination.Length < Columns) throw new ArgumentException("destination too small", nameof(destination));
        var dst = destination[..Columns];
        if (Format == SparseFormat.TwoFour)
        {
            int perRow = SparsePacking.TwoFourValuesPerRow(Columns), metaPerRow = SparsePacking.TwoFourMetaPerRow(Columns);
            var values = new float[perRow];
            ReadValues((long)row * perRow, values);
            SparsePacking.UnpackTwoFourRow(values, new ReadOnlySpan<ushort>((ushort*)Index + (long)row * metaPerRow, metaPerRow), dst);
        }
        else
        {
            int words = SparsePacking.MaskWordsPerRow(Columns);
            long* off = (long*)RowOffsets;
            var values = new float[off[row + 1] - off[row]];
            ReadValues(off[row], values);
            SparsePacking.UnpackBitmaskRow(new ReadOnlySpan<ulong>((ulong*)Index + (long)row * words, words), values, dst);
        }
    }

    /// <summary>The dense weight as f32, row-major [Rows, Columns].</summary>
    public float[] ToDense()
    {
        long count = (long)Rows * Columns;
        if (count > Array.MaxLength) throw new InvalidOperationException($"{count} elements are too many for one array");
        var result = new float[count];
        Parallel.For(0, Rows, r => UnpackRow(r, result.AsSpan(r * Columns, Columns)));
        return result;
    }

    /// <summary>The dense weight in <see cref="ValuesDType"/>, in native memory (the dense kernel's input).</summary>
    public HostBuffer<byte> ToDenseNative()
    {
        int size = ValuesDType.ElementSize();
        var buffer = new HostBuffer<byte>((long)Rows * Columns * size);
        byte* basePtr = buffer.Pointer;
        Parallel.For(0, Rows, () => new float[Columns], (r, _, row) =>
        {
            UnpackRow(r, row);
            Store(row, ValuesDType, new Span<byte>(basePtr + (long)r * Columns * size, Columns * size));
            return row;
        }, _ => { });
        return buffer;
    }

    private void ReadValues(long start, Span<float> destination)
    {
        int size = ValuesDType.ElementSize();
        ValuesDType.ConvertToFloat32(new ReadOnlySpan<byte>((byte*)Values + start * size, destination.Length * size), destination);
    }

    private static void Store(ReadOnlySpan<float> source, TensorDType dtype, Span<byte> destination)
    {
        switch (dtype)
        {
            case TensorDType.F32:
                MemoryMarshal.AsBytes(source).CopyTo(destination);
                break;
            case TensorDType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(destination);
                for (int i = 0; i < source.Length; i++) halves[i] = (Half)source[i];
                break;
            default:
                var raw = MemoryMarshal.Cast<byte, ushort>(destination);
                for (int i = 0; i < source.Length; i++) raw[i] = TensorDTypeExtensions.SingleToBFloat16(source[i]);
                break;
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var d in _owned) d.Dispose();
        GC.KeepAlive(_keepAlive);
    }
}
