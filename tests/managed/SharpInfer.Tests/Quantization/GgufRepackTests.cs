// GgufRepackTests.cs: GGUF Q8_0, Q4_0, Q4_1, Q4_K and Q6_K repacked into the si_qmatmul layout
// dequantize bit for bit to llama.cpp's dequantize_row_* on random hand-built blocks; quantized
// GGUF files load through ModelLoader with those values; unsupported block types are clear errors.
using SharpInfer.Models;
using SharpInfer.Models.Gguf;
using SharpInfer.Quantization;
using SharpInfer.Tests.Models;

namespace SharpInfer.Tests.Quantization;

public sealed class GgufRepackTests
{
    public static TheoryData<GgmlType> Types() => new(GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q4_K, GgmlType.Q6_K);

    private static float[] LlamaCpp(GgmlType type, ReadOnlySpan<byte> row, int columns)
    {
        var y = new float[columns];
        switch (type)
        {
            case GgmlType.Q8_0: LlamaCppDequant.Q8_0(row, y); break;
            case GgmlType.Q4_0: LlamaCppDequant.Q4_0(row, y); break;
            case GgmlType.Q4_1: LlamaCppDequant.Q4_1(row, y); break;
            case GgmlType.Q4_K: LlamaCppDequant.Q4_K(row, y); break;
            case GgmlType.Q6_K: LlamaCppDequant.Q6_K(row, y); break;
        }
        return y;
    }

    [Theory]
    [MemberData(nameof(Types))]
    public unsafe void Repack_DequantizesBitForBit_ToLlamaCpp(GgmlType type)
    {
        Assert.True(GgmlTypeInfo.TryGetBlockLayout(type, out int blockElements, out int blockBytes));
        var rng = new Random((int)type * 7919);
        const int rows = 7, blocksPerRow = 3;
        int columns = blocksPerRow * blockElements;
        byte[] data = QuantTestData.RandomBlocks(type, rows * blocksPerRow, rng);

        QuantizedWeight weight;
        fixed (byte* p = data) weight = GgufRepack.Repack(type, (nint)p, data.Length, rows, columns);
        using var _ = weight;
        var (format, group) = GgufRepack.TargetLayout(type);
        Assert.Equal(format, weight.Format);
        Assert.Equal(group, weight.GroupSize);
        Assert.False(weight.IsRagged);
        // Q4_0 is symmetric: no offsets stored (20 bytes per 32 weights instead of 24).
        Assert.Equal(type == GgmlType.Q4_0, weight.IsSymmetric);
        if (type == GgmlType.Q4_0) Assert.Equal(rows * blocksPerRow * 20L, weight.ByteLength);

        var actual = new float[columns];
        for (int r = 0; r < rows; r++)
        {
            weight.DequantizeRow(r, actual);
            var expected = LlamaCpp(type, data.AsSpan(r * blocksPerRow * blockBytes, blocksPerRow * blockBytes), columns);
            QuantTestData.AssertBitwiseEqual(expected, actual, $"{type} row {r}", zeroSignMayDiffer: type == GgmlType.Q4_0);
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Repack_ExtremeScales_StayExact(GgmlType type)
    {
        // Largest and smallest f16 magnitudes, both signs, with every quant value present.
        Assert.True(GgmlTypeInfo.TryGetBlockLayout(type, out int blockElements, out int blockBytes));
        ushort[] halves = [0x7BFF, 0xFBFF, 0x0001, 0x8001, 0x0400, 0x3C00, 0x0000];
        foreach (ushort h in halves)
        {
            var rng = new Random(h);
            byte[] block = QuantTestData.RandomBlocks(type, 1, rng);
            int[] halfAt = type switch { GgmlType.Q6_K => [208], GgmlType.Q4_1 or GgmlType.Q4_K => [0, 2], _ => [0] };
            foreach (int at in halfAt) System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(at), h);
            using var weight = QuantizedWeight.Allocate(GgufRepack.TargetLayout(type).Format, 1, blockElements, GgufRepack.TargetLayout(type).GroupSize);
            GgufRepack.RepackRow(type, block, weight, 0);
            var actual = new float[blockElements];
            weight.DequantizeRow(0, actual);
            QuantTestData.AssertBitwiseEqual(LlamaCpp(type, block, blockElements), actual, $"{type} d=0x{h:X4}", zeroSignMayDiffer: type == GgmlType.Q4_0);
        }
    }

    [Fact]
    public void Q4_0_NibbleOrder_IsLowHalfThenHighHalf()
    {
        // qs[j] low nibble is element j, high nibble element j + 16: our layout is adjacent pairs.
        byte[] block = new byte[18];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(block, BitConverter.HalfToUInt16Bits((Half)1f));
        for (int j = 0; j < 16; j++) block[2 + j] = (byte)(j | ((15 - j) << 4));
        using var weight = QuantizedWeight.Allocate(QuantFormat.Int4, 1, 32, 32);
        GgufRepack.RepackRow(GgmlType.Q4_0, block, weight, 0);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal(j, weight.GetValue(0, j));
            Assert.Equal(15 - j, weight.GetValue(0, j + 16));
        }
        Assert.Equal(-8f, weight.RowOffsets(0)[0]);
    }

    [Fact]
    public void SymmetricInt4_RefusesBlocksWithOffsets_AndHasNoOffsetRows()
    {
        using var weight = QuantizedWeight.Allocate(QuantFormat.Int4, 1, 32, 32, symmetric: true);
        Assert.True(weight.IsSymmetric);
        Assert.Equal(0, weight.OffsetsData);
        Assert.Contains("symmetric", weight.Describe());
        var error = Assert.Throws<ArgumentException>(() => GgufRepack.RepackRow(GgmlType.Q4_1, new byte[20], weight, 0));
        Assert.Contains("Q4_1", error.Message);
        Assert.Throws<InvalidOperationException>(() => weight.RowOffsets(0));
        Assert.Throws<ArgumentException>(() => QuantizedWeight.Allocate(QuantFormat.Int8, 1, 32, 32, symmetric: true));
    }

    [Fact]
    public void Encode_Q8_0_And_Q4_0_RoundTripWithinHalfAStep()
    {
        float[] values = QuantTestData.Gaussian(64 * 4, seed: 3);
        foreach (var type in new[] { GgmlType.Q8_0, GgmlType.Q4_0 })
        {
            var bytes = new byte[GgufRepack.EncodedSize(type, values.Length)];
            GgufRepack.Encode(type, values, bytes);
            var decoded = new float[values.Length];
            if (type == GgmlType.Q8_0) LlamaCppDequant.Q8_0(bytes, decoded);
            else LlamaCppDequant.Q4_0(bytes, decoded);
            for (int b = 0; b < values.Length / 32; b++)
            {
                float amax = values.Skip(b * 32).Take(32).Max(MathF.Abs);
                // Q8_0 rounds to nearest; Q4_0 clamps the end opposite the largest value to 7 steps (one step off).
                float bound = type == GgmlType.Q8_0 ? amax / 127 * 0.5f : amax / 8;
                for (int j = 0; j < 32; j++)
                    Assert.True(MathF.Abs(decoded[b * 32 + j] - values[b * 32 + j]) <= bound + 1e-3f * amax, $"{type} element {b * 32 + j}");
            }
        }
    }

    /// <summary>A small GGUF whose linears use every supported block type (hidden 256 so K-quants fit).</summary>
    private static (string Path, Dictionary<string, (GgmlType Type, byte[] Data, int Columns)> Blocks) WriteMixedGguf(TempDirectory dir)
    {
        var config = TestFiles.SmallConfig with { HiddenSize = 256, IntermediateSize = 256, NumHeads = 4, NumKvHeads = 2, HeadDim = 64, NumLayers = 1 };
        var plan = new Dictionary<string, GgmlType>
        {
            ["token_embd.weight"] = GgmlType.Q8_0,
            ["blk.0.attn_q.weight"] = GgmlType.Q4_0,
            ["blk.0.attn_k.weight"] = GgmlType.Q4_1,
            ["blk.0.attn_v.weight"] = GgmlType.Q6_K,
            ["blk.0.ffn_gate.weight"] = GgmlType.Q4_K,
            ["blk.0.ffn_down.weight"] = GgmlType.Q8_0,
            ["output.weight"] = GgmlType.Q6_K,
        };
        var blocks = new Dictionary<string, (GgmlType, byte[], int)>();
        var rng = new Random(11);
        string path = dir.File("mixed.gguf");
        TestFiles.WriteLlamaGguf(path, config, editTensors: tensors =>
        {
            for (int i = 0; i < tensors.Count; i++)
            {
                if (!plan.TryGetValue(tensors[i].Name, out var type)) continue;
                GgmlTypeInfo.TryGetBlockLayout(type, out int blockElements, out _);
                long[] shape = tensors[i].Shape;
                byte[] data = QuantTestData.RandomBlocks(type, (int)(shape[0] * shape[1] / blockElements), rng);
                tensors[i] = GgufTensorData.FromBytes(tensors[i].Name, shape, type, data);
                blocks[tensors[i].Name] = (type, data, (int)shape[1]);
            }
        });
        return (path, blocks);
    }

    [Fact]
    public void QuantizedGguf_Loads_WithLlamaCppValues_AndMixedFormats()
    {
        using var dir = new TempDirectory();
        var (path, blocks) = WriteMixedGguf(dir);
        using var checkpoint = ModelLoader.Load(path);
        foreach (var (name, (type, data, columns)) in blocks)
        {
            var tensor = checkpoint.GetTensor(name);
            Assert.True(tensor.IsQuantized, name);
            Assert.Equal(GgmlTypeInfo.Name(type), tensor.SourceType);
            var expected = LlamaCpp(type, data, (int)tensor.ElementCount); // rows are consecutive blocks
            QuantTestData.AssertBitwiseEqual(expected, tensor.ToFloat32(), name, zeroSignMayDiffer: type == GgmlType.Q4_0);
        }
        Assert.False(checkpoint.GetTensor("blk.0.ffn_up.weight").IsQuantized); // F32 stays dense
        var e = Assert.Throws<InvalidOperationException>(() => checkpoint.GetTensor("blk.0.attn_q.weight").Data);
        Assert.Contains("quantized", e.Message);
    }

    [Theory]
    [InlineData(GgmlType.Q5_0)]
    [InlineData(GgmlType.Q2_K)]
    [InlineData(GgmlType.IQ4_NL)]
    public void UnsupportedBlockType_IsAnErrorNamingTheTensor(GgmlType type)
    {
        using var dir = new TempDirectory();
        string path = dir.File("bad.gguf");
        var config = TestFiles.SmallConfig with { HiddenSize = 256, NumHeads = 4, HeadDim = 64 };
        TestFiles.WriteLlamaGguf(path, config, editTensors: tensors =>
        {
            int i = tensors.FindIndex(t => t.Name == "blk.1.ffn_up.weight");
            GgmlTypeInfo.TryGetBlockLayout(type, out int elements, out int bytes);
            tensors[i] = GgufTensorData.FromBytes("blk.1.ffn_up.weight", [48, 256], type, new byte[48 * 256 / elements * bytes]);
        });
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(path).Dispose());
        Assert.Contains($"unsupported tensor type {GgmlTypeInfo.Name(type)} in tensor 'blk.1.ffn_up.weight'", e.Message);
        Assert.Contains("Q8_0/Q4_0/Q4_1/Q4_K/Q6_K", e.Message);
    }

    [Fact]
    public void QuantizedVector_IsRejectedWhenUsed()
    {
        // A 1-D quantized tensor cannot be a matrix; the loader says which one.
        using var dir = new TempDirectory();
        string path = dir.File("vec.gguf");
        TestFiles.WriteLlamaGguf(path, TestFiles.SmallConfig, editTensors: tensors =>
        {
            int i = tensors.FindIndex(t => t.Name == "blk.0.attn_norm.weight");
            tensors[i] = GgufTensorData.FromBytes("blk.0.attn_norm.weight", [32], GgmlType.Q8_0, new byte[34]);
        });
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(path).Dispose());
        Assert.Contains("'blk.0.attn_norm.weight' is Q8_0 with 1 dims", e.Message);
    }
}
