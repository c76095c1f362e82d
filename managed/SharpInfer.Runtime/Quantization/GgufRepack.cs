// GgufRepack.cs: repacks llama.cpp block-quantized GGUF tensors (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) into
// the si_qmatmul layout, exactly: every dequantized value equals llama.cpp's dequantize_row_* result
// bit for bit. Block layouts follow ggml-common.h; the repacked form only moves bits and turns the
// per-block f16 / 6-bit scales into the f32 products llama.cpp computes itself.
//
//   Q8_0 (34 B / 32): f16 d, int8 qs[32]                 -> Int8 g32:  scale d
//   Q4_0 (18 B / 32): f16 d, qs[16] (elements j and j+16 -> Int4 g32 symmetric: scale d (the
//                     in the low / high nibble of qs[j])    kernels take offset -8d; 20 B / 32)
//   Q4_1 (20 B / 32): f16 d, f16 m, qs[16] as Q4_0       -> Int4 g32:  scale d, offset m
//   Q4_K (144 B / 256): f16 d, f16 dmin, 12 B of 6-bit   -> Int4 g32:  scale d*sc, offset -(dmin*m)
//                     (sc, m) x 8, qs[128]: 64-element chunks, low nibbles = first 32, high = next 32
//   Q6_K (210 B / 256): ql[128], qh[64], int8 sc[16], d  -> Int8 g16:  q - 32, scale d*sc
//
// Why exact: llama.cpp computes (q-8)*d, d*q + m, d1*q - m1 and (d*sc)*q in f32. With d, m f16
// (11-bit significands), sc and m at most 8 bits and q at most 6 bits, every product is exact in
// f32, so q*scale + offset rounds once at the same sum llama.cpp rounds once (Q4_1, Q4_K) or is
// exact throughout (Q8_0, Q4_0, Q6_K), and a fused multiply-add in a kernel cannot change it.
// One bit differs: for Q4_0 with q = 8 and d < 0, llama.cpp's (q-8)*d is -0 and 8d + (-8d) is +0,
// equal values that differ only in the sign bit of zero.
using System.Buffers.Binary;
using SharpInfer.Models.Gguf;

namespace SharpInfer.Quantization;

public static class GgufRepack
{
    /// <summary>The GGUF block types this build repacks into quantized weights.</summary>
    public static IReadOnlyList<GgmlType> SupportedTypes { get; } =
        [GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q4_K, GgmlType.Q6_K];

    public static bool IsSupported(GgmlType type) => SupportedTypes.Contains(type);

    /// <summary>The format and group size a block type repacks into.</summary>
    public static (QuantFormat Format, int GroupSize) TargetLayout(GgmlType type) => type switch
    {
        GgmlType.Q8_0 => (QuantFormat.Int8, 32),
        GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q4_K => (QuantFormat.Int4, 32),
        GgmlType.Q6_K => (QuantFormat.Int8, 16),
        _ => throw new ArgumentException($"GGUF type {GgmlTypeInfo.Name(type)} is not repacked (supported: {string.Join(", ", SupportedTypes)})"),
    };

    /// <summary>
    /// How the runtime multiplies a repacked tensor by default, following llama.cpp's CPU dot
    /// products, which quantize the activations to int8 (Q8_0 blocks of 32 for Q8_0/Q4_0/Q4_1,
    /// Q8_K blocks of 256 for the k-quants): Q8_0, Q4_0, Q4_1 and Q4_K use block-wise int8
    /// activations of 32 (for Q4_K finer than llama.cpp's 256) and so the integer (VNNI) kernels.
    /// Q6_K keeps f32 activations: its 16-column groups would split a 32-column block. Set a
    /// weight's activations to Float (QuantizedWeight.SetActivations) for the exact dequantized
    /// product.
    /// </summary>
    public static QuantActivations ActivationsFor(GgmlType type) =>
        type is GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q4_1 or GgmlType.Q4_K ? QuantActivations.Int8Block32 : QuantActivations.Float;

    /// <summary>
    /// Repacks a [rows, columns] tensor of <paramref name="type"/> blocks (row-major; each row is
    /// columns / block_elements consecutive blocks) starting at <paramref name="data"/>.
    /// </summary>
    public static unsafe QuantizedWeight Repack(GgmlType type, nint data, long byteLength, int rows, int columns)
    {
        var (format, group) = TargetLayout(type);
        if (!GgmlTypeInfo.TryGetBlockLayout(type, out int blockElements, out int blockBytes))
            throw new ArgumentException($"unknown ggml type {type}");
        if (columns % blockElements != 0)
            throw new ArgumentException($"{columns} columns are not a multiple of the {type} block size {blockElements}");
        long rowBytes = (long)columns / blockElements * blockBytes;
        if (rowBytes * rows != byteLength)
            throw new ArgumentException($"{byteLength} bytes do not hold [{rows}, {columns}] {type} ({rowBytes * rows} bytes)");

        var weight = QuantizedWeight.Allocate(format, rows, columns, group, ActivationsFor(type), symmetric: type == GgmlType.Q4_0);
        try
        {
            Parallel.For(0, rows, r =>
            {
                var source = new ReadOnlySpan<byte>((byte*)data + r * rowBytes, checked((int)rowBytes));
                RepackRow(type, source, weight, r);
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
    /// A Q4_0/Q4_1 block's 16 bytes (element j in the low nibble of qs[j], element j + 16 in its
    /// high nibble) as our packing (elements 2i and 2i + 1 in the low and high nibble of byte i),
    /// a byte at a time: the first 8 bytes pair low nibbles, the last 8 high nibbles.
    /// </summary>
    internal static void RepackQ4Nibbles(ReadOnlySpan<byte> qs, Span<byte> packed)
    {
        qs = qs[..16];
        packed = packed[..16];
        for (int i = 0; i < 8; i++)
        {
            byte even = qs[2 * i], odd = qs[2 * i + 1];
            packed[i] = (byte)((even & 0x0F) | (odd << 4));
            packed[i + 8] = (byte)((even >> 4) | (odd & 0xF0));
        }
    }

    /// <summary>Repacks one row of blocks into row <paramref name="row"/> of <paramref name="weight"/>.</summary>
    public static void RepackRow(GgmlType type, ReadOnlySpan<byte> blocks, QuantizedWeight weight, int row)
    {
        if (weight.IsSymmetric && type != GgmlType.Q4_0)
            throw new ArgumentException($"{GgmlTypeInfo.Name(type)} blocks carry offsets; a symmetric int4 weight cannot hold them");
        var values = weight.RowValues(row);
        var scales = weight.RowScales(row);
        var offsets = weight.Format == QuantFormat.Int4 && !weight.IsSymmetric ? weight.RowOffsets(row) : default;
        switch (type)
        {
            case GgmlType.Q8_0:
                for (int b = 0, n = blocks.Length / 34; b < n; b++)
                {
                    var block = blocks.Slice(b * 34, 34);
                    scales[b] = Half16(block, 0);
                    block.Slice(2, 32).CopyTo(values.Slice(b * 32, 32));
                }
                break;
            case GgmlType.Q4_0:
            case GgmlType.Q4_1:
            {
                int size = type == GgmlType.Q4_0 ? 18 : 20, qsAt = size - 16;
                for (int b = 0, n = blocks.Length / size; b < n; b++)
                {
                    var block = blocks.Slice(b * size, size);
                    float d = Half16(block, 0);
                    scales[b] = d;
                    if (!weight.IsSymmetric) offsets[b] = type == GgmlType.Q4_0 ? -8f * d : Half16(block, 2);
                    RepackQ4Nibbles(block.Slice(qsAt, 16), values.Slice(b * 16, 16));
                }
                break;
            }
            case GgmlType.Q4_K:
                for (int b = 0, n = blocks.Length / 144; b < n; b++)
                {
                    var block = blocks.Slice(b * 144, 144);
                    float d = Half16(block, 0), dmin = Half16(block, 2);
                    var packedScales = block.Slice(4, 12);
                    var qs = block.Slice(16, 128);
                    var packed = values.Slice(b * 128, 128);
                    for (int s = 0; s < 8; s++)
                    {
                        ScaleMinK4(s, packedScales, out int sc, out int m);
                        scales[b * 8 + s] = d * sc;
                        offsets[b * 8 + s] = -(dmin * m);
                    }
                    for (int chunk = 0; chunk < 4; chunk++)
                        for (int l = 0; l < 32; l++)
                        {
                            byte q = qs[chunk * 32 + l];
                            Int4Packing.Set(packed, chunk * 64 + l, q & 0xF);
                            Int4Packing.Set(packed, chunk * 64 + 32 + l, q >> 4);
                        }
                }
                break;
            case GgmlType.Q6_K:
                for (int b = 0, n = blocks.Length / 210; b < n; b++)
                {
                    var block = blocks.Slice(b * 210, 210);
                    var ql = block[..128];
                    var qh = block.Slice(128, 64);
                    var sc = block.Slice(192, 16);
                    float d = Half16(block, 208);
                    for (int g = 0; g < 16; g++) scales[b * 16 + g] = d * (sbyte)sc[g];
                    var q = values.Slice(b * 256, 256);
                    for (int half = 0; half < 2; half++)
                    {
                        var l4 = ql.Slice(half * 64, 64);
                        var h2 = qh.Slice(half * 32, 32);
                        var y = q.Slice(half * 128, 128);
                        for (int l = 0; l < 32; l++)
                        {
                            y[l] = (byte)(sbyte)(((l4[l] & 0xF) | (((h2[l] >> 0) & 3) << 4)) - 32);
                            y[l + 32] = (byte)(sbyte)(((l4[l + 32] & 0xF) | (((h2[l] >> 2) & 3) << 4)) - 32);
                            y[l + 64] = (byte)(sbyte)(((l4[l] >> 4) | (((h2[l] >> 4) & 3) << 4)) - 32);
                            y[l + 96] = (byte)(sbyte)(((l4[l + 32] >> 4) | (((h2[l] >> 6) & 3) << 4)) - 32);
                        }
                    }
                }
                break;
            default:
                throw new ArgumentException($"GGUF type {GgmlTypeInfo.Name(type)} is not repacked");
        }
    }

    /// <summary>The j-th 6-bit (scale, min) pair of a Q4_K / Q5_K block's 12 packed bytes.</summary>
    internal static void ScaleMinK4(int j, ReadOnlySpan<byte> q, out int scale, out int min)
    {
        if (j < 4)
        {
            scale = q[j] & 63;
            min = q[j + 4] & 63;
        }
        else
        {
            scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }

    private static float Half16(ReadOnlySpan<byte> bytes, int at) => (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(bytes[at..]));

    // ---- writing (synthetic quantized GGUF models) ------------------------------------------------

    /// <summary>Bytes of <paramref name="count"/> f32 values encoded as <paramref name="type"/> blocks.</summary>
    public static long EncodedSize(GgmlType type, long count)
    {
        if (!GgmlTypeInfo.TryGetBlockLayout(type, out int elements, out int bytes) || count % elements != 0)
            throw new ArgumentException($"{count} values cannot be encoded as {type}");
        return count / elements * bytes;
    }

    /// <summary>
    /// Encodes f32 values as Q8_0 or Q4_0 blocks the way llama.cpp's reference quantizers do
    /// (Q8_0: d = max|x| / 127, q = round(x / d); Q4_0: d = (the value of largest magnitude) / -8,
    /// q = min(15, trunc(x / d + 8.5))), for writing test and benchmark models.
    /// </summary>
    public static void Encode(GgmlType type, ReadOnlySpan<float> values, Span<byte> destination)
    {
        switch (type)
        {
            case GgmlType.Q8_0:
                for (int b = 0; b < values.Length / 32; b++)
                {
                    var x = values.Slice(b * 32, 32);
                    var block = destination.Slice(b * 34, 34);
                    float amax = 0;
                    foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
                    float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
                    BinaryPrimitives.WriteUInt16LittleEndian(block, BitConverter.HalfToUInt16Bits((Half)d));
                    for (int j = 0; j < 32; j++) block[2 + j] = (byte)(sbyte)MathF.Round(x[j] * id, MidpointRounding.AwayFromZero);
                }
                break;
            case GgmlType.Q4_0:
                for (int b = 0; b < values.Length / 32; b++)
                {
                    var x = values.Slice(b * 32, 32);
                    var block = destination.Slice(b * 18, 18);
                    float amax = 0, max = 0;
                    foreach (float v in x)
                        if (MathF.Abs(v) > amax) { amax = MathF.Abs(v); max = v; }
                    float d = max / -8f, id = d != 0 ? 1f / d : 0f;
                    BinaryPrimitives.WriteUInt16LittleEndian(block, BitConverter.HalfToUInt16Bits((Half)d));
                    for (int j = 0; j < 16; j++)
                    {
                        int lo = Math.Min(15, (int)(sbyte)(x[j] * id + 8.5f));
                        int hi = Math.Min(15, (int)(sbyte)(x[j + 16] * id + 8.5f));
                        block[2 + j] = (byte)(lo | (hi << 4));
                    }
                }
                break;
            default:
                throw new ArgumentException($"encoding {GgmlTypeInfo.Name(type)} is not implemented (Q8_0 and Q4_0 are)");
        }
    }
}
