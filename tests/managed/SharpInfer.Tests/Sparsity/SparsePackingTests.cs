// SparsePackingTests.cs: the 2:4 and bitmask layouts without a kernel: pack then unpack restores the
// pruned weights exactly (awkward widths, every values dtype), the metadata follows the ABI's bit
// layout, and bad layouts are ModelFormatExceptions naming the tensor.
using SharpInfer.Models;
using SharpInfer.Sparsity;

namespace SharpInfer.Tests.Sparsity;

public sealed class SparsePackingTests
{
    /// <summary>Random weights, rounded to <paramref name="dtype"/> so packing in it is exact.</summary>
    internal static float[] RandomWeights(int rows, int columns, int seed, TensorDType dtype = TensorDType.F32)
    {
        var rng = new Random(seed);
        var w = new float[rows * columns];
        for (int i = 0; i < w.Length; i++)
        {
            float v = (float)(rng.NextDouble() * 2 - 1);
            w[i] = dtype switch
            {
                TensorDType.F16 => (float)(Half)v,
                TensorDType.BF16 => TensorDTypeExtensions.BFloat16ToSingle(TensorDTypeExtensions.SingleToBFloat16(v)),
                _ => v,
            };
        }
        return w;
    }

    public static TheoryData<int, TensorDType> Widths()
    {
        var data = new TheoryData<int, TensorDType>();
        foreach (int k in new[] { 1, 3, 13, 16, 33, 64, 97, 172 })
            foreach (var dtype in new[] { TensorDType.F32, TensorDType.F16, TensorDType.BF16 })
                data.Add(k, dtype);
        return data;
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void TwoFour_PackThenUnpack_EqualsThePrunedWeights(int columns, TensorDType dtype)
    {
        const int rows = 7;
        var w = RandomWeights(rows, columns, seed: columns, dtype);
        Pruner.Prune(w, rows, columns, SparsityPattern.TwoFour, 0.5);
        // Some groups with fewer than 2 non-zeros, so the fill rule is exercised too.
        for (int c = 0; c < columns; c += 5) w[c] = 0;
        using var packed = SparseWeight.Pack("t", w, rows, columns, SparseFormat.TwoFour, dtype);
        Assert.Equal((long)rows * SparsePacking.TwoFourValuesPerRow(columns), packed.ValueCount);
        Assert.Equal(w, packed.ToDense());
        packed.Validate("t.sparse_meta");  // what we write passes what we check at load
    }

    [Theory]
    [MemberData(nameof(Widths))]
    public void Bitmask_PackThenUnpack_EqualsThePrunedWeights(int columns, TensorDType dtype)
    {
        const int rows = 5;
        var w = RandomWeights(rows, columns, seed: 100 + columns, dtype);
        Pruner.Prune(w, rows, columns, SparsityPattern.Unstructured, 0.7);
        using var packed = SparseWeight.Pack("t", w, rows, columns, SparseFormat.Bitmask, dtype);
        Assert.Equal(w.Count(v => v != 0), packed.ValueCount);
        Assert.Equal(w, packed.ToDense());
        packed.Validate("t.sparse_mask", "t.sparse_row_offsets");
    }

    [Fact]
    public unsafe void TwoFour_MetadataFollowsTheAbiBitLayout()
    {
        // Row of 16: groups keep (1, 3), (0, 2), (2 only -> 0, 2), (none -> 0, 1).
        float[] row = [0, 5, 0, 6, 7, 0, 8, 0, 0, 0, 9, 0, 0, 0, 0, 0];
        using var packed = SparseWeight.Pack("t", row, 1, 16, SparseFormat.TwoFour);
        ushort meta = *(ushort*)packed.Index;
        int Code(int first, int second) => first | second << 2;
        Assert.Equal(Code(1, 3) | Code(0, 2) << 4 | Code(0, 2) << 8 | Code(0, 1) << 12, meta);
        var values = new ReadOnlySpan<float>((void*)packed.Values, 8).ToArray();
        Assert.Equal([5f, 6, 7, 8, 0, 9, 0, 0], values);
    }

    [Fact]
    public unsafe void Bitmask_MaskWordsAndOffsetsFollowTheAbi()
    {
        var w = new float[2 * 70];
        w[0] = 1; w[63] = 2; w[64] = 3; w[69] = 4;  // row 0: bits 0, 63 of word 0; bits 0, 5 of word 1
        w[70 + 5] = 5;                               // row 1: bit 5 of word 0
        using var packed = SparseWeight.Pack("t", w, 2, 70, SparseFormat.Bitmask);
        var mask = new ReadOnlySpan<ulong>((void*)packed.Index, 4).ToArray();
        Assert.Equal([1UL | 1UL << 63, 1UL | 1UL << 5, 1UL << 5, 0UL], mask);
        Assert.Equal([0L, 4, 5], new ReadOnlySpan<long>((void*)packed.RowOffsets, 3).ToArray());
        Assert.Equal([1f, 2, 3, 4, 5], new ReadOnlySpan<float>((void*)packed.Values, 5).ToArray());
    }

    [Fact]
    public void TwoFour_OfAWeightThatIsNot24_NamesTheTensorAndGroup()
    {
        var w = new float[2 * 8];
        w[8 + 4] = 1; w[8 + 5] = 2; w[8 + 7] = 3;  // row 1, columns 4..7: three non-zeros
        var e = Assert.Throws<ModelFormatException>(() => SparseWeight.Pack("model.layers.3.mlp.up_proj.weight", w, 2, 8, SparseFormat.TwoFour, sourcePath: "/m"));
        Assert.Contains("'model.layers.3.mlp.up_proj.weight'", e.Message);
        Assert.Contains("row 1, columns 4..7", e.Message);
        Assert.Contains("3 non-zeros", e.Message);
        Assert.Equal("/m", e.FilePath);
    }

    [Fact]
    public unsafe void Validate_BadTwoFourCode_NamesTheMetadataTensor()
    {
        var w = RandomWeights(3, 32, seed: 1);
        Pruner.Prune(w, 3, 32, SparsityPattern.TwoFour, 0.5);
        using var packed = SparseWeight.Pack("t", w, 3, 32, SparseFormat.TwoFour);
        // Row 2, group 5 (word 1, bits 4-7): positions 2 and 2.
        ushort* meta = (ushort*)packed.Index + 2 * 2 + 1;
        *meta = (ushort)((*meta & ~0xF0) | (2 | 2 << 2) << 4);
        var e = Assert.Throws<ModelFormatException>(() => packed.Validate("m.sparse_meta"));
        Assert.Contains("'m.sparse_meta'", e.Message);
        Assert.Contains("row 2, group 5", e.Message);
    }

    [Fact]
    public unsafe void Validate_RowOffsetsThatDisagreeWithThePopcounts_NameBothTensors()
    {
        var w = RandomWeights(4, 40, seed: 2);
        Pruner.Prune(w, 4, 40, SparsityPattern.Unstructured, 0.5);
        using var packed = SparseWeight.Pack("t", w, 4, 40, SparseFormat.Bitmask);
        ((long*)packed.RowOffsets)[2] += 1;  // row 1 claims one more value, row 2 one fewer
        var e = Assert.Throws<ModelFormatException>(() => packed.Validate("m.sparse_mask", "m.sparse_row_offsets"));
        Assert.Contains("'m.sparse_row_offsets'", e.Message);
        Assert.Contains("'m.sparse_mask'", e.Message);
        Assert.Contains("row 1", e.Message);
    }

    [Fact]
    public unsafe void Validate_MaskBitsPastTheColumns_AreRejected()
    {
        var w = RandomWeights(2, 40, seed: 3);
        using var packed = SparseWeight.Pack("t", w, 2, 40, SparseFormat.Bitmask);
        ((ulong*)packed.Index)[1] |= 1UL << 45;
        var e = Assert.Throws<ModelFormatException>(() => packed.Validate("m.sparse_mask", "m.sparse_row_offsets"));
        Assert.Contains("'m.sparse_mask'", e.Message);
        Assert.Contains("past 40", e.Message);
    }
}
