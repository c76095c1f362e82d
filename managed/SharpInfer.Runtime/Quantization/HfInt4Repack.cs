// HfInt4Repack.cs: repacks Hugging Face AutoGPTQ and AutoAWQ (GEMM) int4 linear weights into the
// si_qmatmul Int4 layout. Both store w = (q - z) * s with q, z in [0, 15] packed eight per int32
// and s [n_groups, out] (f16); they differ in which axis is packed and in nibble order:
//   GPTQ: qweight [in/8, out]   nibble i of qweight[r, o] = q[in = 8r + i, o]
//         qzeros  [groups, out/8], nibble i = z[o = 8c + i]; checkpoint_format "gptq" (v1) stores z - 1
//   AWQ:  qweight [in, out/8]   nibble i of qweight[r, c] = q[r, o = 8c + AwqOrder[i]],
//         AwqOrder = [0, 2, 4, 6, 1, 3, 5, 7]; qzeros [groups, out/8] interleaved the same way
// Repacked: q[o, in] as uint4 along in, scale = s, offset = -(z * s). With f16 scales every product
// is exact in f32, so q * scale + offset equals (q - z) * s exactly.
using System.Buffers.Binary;
using SharpInfer.Models;

namespace SharpInfer.Quantization;

public static class HfInt4Repack
{
    /// <summary>AutoAWQ's packing order: nibble i holds output column 8c + AwqOrder[i].</summary>
    public static ReadOnlySpan<int> AwqOrder => [0, 2, 4, 6, 1, 3, 5, 7];

    /// <summary>Which nibble holds output column 8c + j (the inverse of <see cref="AwqOrder"/>).</summary>
    public static ReadOnlySpan<int> AwqNibbleOfColumn => [0, 4, 1, 5, 2, 6, 3, 7];

    /// <summary>An int32-packed tensor or a scales tensor as stored: raw little-endian bytes, dtype, row-major shape.</summary>
    public readonly ref struct Packed(ReadOnlySpan<byte> data, string dtype, long[] shape)
    {
        public ReadOnlySpan<byte> Data { get; } = data;
        public string DType { get; } = dtype;
        public long[] Shape { get; } = shape;
    }

    /// <summary>
    /// Repacks a GPTQ linear [outFeatures, inFeatures]. <paramref name="zeroPlusOne"/> is true for
    /// checkpoint_format "gptq" (v1, which stores zero - 1), false for "gptq_v2".
    /// </summary>
    public static QuantizedWeight RepackGptq(string module, Packed qweight, Packed qzeros, Packed scales,
                                             int outFeatures, int inFeatures, int groupSize, bool zeroPlusOne, string? path = null)
    {
        int groups = CheckShapes(module, qweight, qzeros, scales, outFeatures, inFeatures, groupSize, path,
                                 expectedQweight: [(inFeatures + 7) / 8, outFeatures]);
        var weight = QuantizedWeight.Allocate(QuantFormat.Int4, outFeatures, inFeatures, groupSize);
        try
        {
            var qw = qweight.Data;
            var qz = qzeros.Data;
            var sc = scales.Data;
            string dtype = scales.DType;
            int zeroColumns = (outFeatures + 7) / 8;
            var scaleCopy = ReadScales(sc, dtype, groups, outFeatures);
            var zeroCopy = new byte[(long)groups * outFeatures];
            for (int g = 0; g < groups; g++)
                for (int o = 0; o < outFeatures; o++)
                    zeroCopy[(long)g * outFeatures + o] = (byte)((Word(qz, (long)g * zeroColumns + o / 8) >> (4 * (o % 8))) & 0xF);
            byte[] qwCopy = qw.ToArray();
            Parallel.For(0, outFeatures, o =>
            {
                var row = weight.RowValues(o);
                var rowScales = weight.RowScales(o);
                var rowOffsets = weight.RowOffsets(o);
                for (int k = 0; k < inFeatures; k++)
                    Int4Packing.Set(row, k, (int)((Word(qwCopy, (long)(k / 8) * outFeatures + o) >> (4 * (k % 8))) & 0xF));
                for (int g = 0; g < groups; g++)
                {
                    float s = scaleCopy[(long)g * outFeatures + o];
                    int z = zeroCopy[(long)g * outFeatures + o] + (zeroPlusOne ? 1 : 0);
                    rowScales[g] = s;
                    rowOffsets[g] = -(z * s);
                }
            });
        }
        catch
        {
            weight.Dispose();
            throw;
        }
        return weight;
    }

    /// <summary>Repacks an AutoAWQ GEMM linear [outFeatures, inFeatures].</summary>
    public static QuantizedWeight RepackAwq(string module, Packed qweight, Packed qzeros, Packed scales,
                                            int outFeatures, int inFeatures, int groupSize, string? path = null)
    {
        int groups = CheckShapes(module, qweight, qzeros, scales, outFeatures, inFeatures, groupSize, path,
                                 expectedQweight: [inFeatures, (outFeatures + 7) / 8]);
        var weight = QuantizedWeight.Allocate(QuantFormat.Int4, outFeatures, inFeatures, groupSize);
        try
        {
            int packedColumns = (outFeatures + 7) / 8;
            var scaleCopy = ReadScales(scales.Data, scales.DType, groups, outFeatures);
            var zeros = new byte[(long)groups * outFeatures];
            var qz = qzeros.Data;
            var nibbleOf = AwqNibbleOfColumn;
            for (int g = 0; g < groups; g++)
                for (int o = 0; o < outFeatures; o++)
                    zeros[(long)g * outFeatures + o] = (byte)((Word(qz, (long)g * packedColumns + o / 8) >> (4 * nibbleOf[o % 8])) & 0xF);
            byte[] qwCopy = qweight.Data.ToArray();
            Parallel.For(0, outFeatures, o =>
            {
                var row = weight.RowValues(o);
                var rowScales = weight.RowScales(o);
                var rowOffsets = weight.RowOffsets(o);
                int shift = 4 * AwqNibbleOfColumn[o % 8];
                for (int k = 0; k < inFeatures; k++)
                    Int4Packing.Set(row, k, (int)((Word(qwCopy, (long)k * packedColumns + o / 8) >> shift) & 0xF));
                for (int g = 0; g < groups; g++)
                {
                    float s = scaleCopy[(long)g * outFeatures + o];
                    int z = zeros[(long)g * outFeatures + o];
                    rowScales[g] = s;
                    rowOffsets[g] = -(z * s);
                }
            });
        }
        catch
        {
            weight.Dispose();
            throw;
        }
        return weight;
    }

    /// <summary>
    /// Checks a GPTQ g_idx (int32 [in]): act-order (desc_act) checkpoints permute the input channels
    /// into groups, which this layout cannot express. A trivial g_idx (k / group) is accepted.
    /// </summary>
    public static void CheckTrivialGIdx(string module, ReadOnlySpan<byte> gIdx, string dtype, long[] shape, int inFeatures, int groupSize, string? path = null)
    {
        if (dtype != "I32" || shape.Length != 1 || shape[0] != inFeatures)
            throw new ModelFormatException(path, $"tensor '{module}.g_idx' is {dtype} [{string.Join(", ", shape)}], expected I32 [{inFeatures}]");
        for (int k = 0; k < inFeatures; k++)
        {
            int g = BinaryPrimitives.ReadInt32LittleEndian(gIdx[(k * 4)..]);
            if (g != k / groupSize)
                throw new ModelFormatException(path,
                    $"tensor '{module}.g_idx' maps input channel {k} to group {g} instead of {k / groupSize}: GPTQ act-order (desc_act) checkpoints are not supported; re-quantize without desc_act");
        }
    }

    private static int CheckShapes(string module, Packed qweight, Packed qzeros, Packed scales, int outFeatures, int inFeatures,
                                   int groupSize, string? path, long[] expectedQweight)
    {
        if (groupSize < 1) throw new ModelFormatException(path, $"'{module}': group size {groupSize} must be >= 1");
        int groups = QuantizedWeight.GroupCountFor(inFeatures, groupSize);
        string Shape(long[] s) => $"[{string.Join(", ", s)}]";
        if (qweight.DType is not ("I32" or "U32") || !qweight.Shape.AsSpan().SequenceEqual(expectedQweight))
            throw new ModelFormatException(path,
                $"tensor '{module}.qweight' is {qweight.DType} {Shape(qweight.Shape)}, but a [{outFeatures}, {inFeatures}] int4 linear needs I32 {Shape(expectedQweight)}: the qweight shape disagrees with the config");
        if (scales.Shape.Length != 2 || scales.Shape[1] != outFeatures)
            throw new ModelFormatException(path, $"tensor '{module}.scales' has shape {Shape(scales.Shape)}, expected [{groups}, {outFeatures}]");
        if (scales.Shape[0] != groups)
            throw new ModelFormatException(path,
                $"tensor '{module}.scales' has {scales.Shape[0]} group rows, but group size {groupSize} over {inFeatures} input channels needs ceil({inFeatures}/{groupSize}) = {groups}: the stated group size does not fit this tensor");
        if (scales.DType is not ("F16" or "F32" or "BF16"))
            throw new ModelFormatException(path, $"tensor '{module}.scales' has dtype {scales.DType} (expected F16, BF16 or F32)");
        long[] zerosShape = [groups, (outFeatures + 7) / 8];
        if (qzeros.DType is not ("I32" or "U32") || !qzeros.Shape.AsSpan().SequenceEqual(zerosShape))
            throw new ModelFormatException(path, $"tensor '{module}.qzeros' is {qzeros.DType} {Shape(qzeros.Shape)}, expected I32 {Shape(zerosShape)}");
        return groups;
    }

    private static uint Word(ReadOnlySpan<byte> data, long index) => BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(checked((int)(index * 4)), 4));

    private static float[] ReadScales(ReadOnlySpan<byte> data, string dtype, int groups, int outFeatures)
    {
        var result = new float[(long)groups * outFeatures];
        var type = dtype switch { "F16" => TensorDType.F16, "BF16" => TensorDType.BF16, _ => TensorDType.F32 };
        type.ConvertToFloat32(data, result);
        return result;
    }

    // ---- writing (synthetic test checkpoints) ------------------------------------------------------

    /// <summary>Packs q [out, in] (values 0..15) as a GPTQ qweight [ceil(in/8), out] (little-endian int32 bytes).</summary>
    public static byte[] PackGptqWeight(ReadOnlySpan<byte> q, int outFeatures, int inFeatures)
    {
        int rows = (inFeatures + 7) / 8;
        var words = new uint[(long)rows * outFeatures];
        for (int o = 0; o < outFeatures; o++)
            for (int k = 0; k < inFeatures; k++)
                words[(long)(k / 8) * outFeatures + o] |= (uint)q[o * inFeatures + k] << (4 * (k % 8));
        return ToBytes(words);
    }

    /// <summary>Packs q [out, in] as an AWQ qweight [in, ceil(out/8)] with AWQ's interleaved nibble order.</summary>
    public static byte[] PackAwqWeight(ReadOnlySpan<byte> q, int outFeatures, int inFeatures)
    {
        int columns = (outFeatures + 7) / 8;
        var words = new uint[(long)inFeatures * columns];
        for (int o = 0; o < outFeatures; o++)
            for (int k = 0; k < inFeatures; k++)
                words[(long)k * columns + o / 8] |= (uint)q[o * inFeatures + k] << (4 * AwqNibbleOfColumn[o % 8]);
        return ToBytes(words);
    }

    /// <summary>Packs zeros [groups, out] along out: plainly (GPTQ) or AWQ-interleaved.</summary>
    public static byte[] PackZeros(ReadOnlySpan<byte> zeros, int groups, int outFeatures, bool awqOrder)
    {
        int columns = (outFeatures + 7) / 8;
        var words = new uint[(long)groups * columns];
        for (int g = 0; g < groups; g++)
            for (int o = 0; o < outFeatures; o++)
                words[(long)g * columns + o / 8] |= (uint)(zeros[g * outFeatures + o] & 0xF) << (4 * (awqOrder ? AwqNibbleOfColumn[o % 8] : o % 8));
        return ToBytes(words);
    }

    private static byte[] ToBytes(uint[] words)
    {
        var bytes = new byte[words.Length * 4L];
        for (long i = 0; i < words.Length; i++) BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan((int)(i * 4)), words[i]);
        return bytes;
    }
}
