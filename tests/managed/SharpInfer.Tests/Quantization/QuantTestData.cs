// QuantTestData.cs: helpers for the quantization tests: llama.cpp's dequantization formulas written
// out independently (the oracle the repack is checked against bit for bit), random hand-built
// blocks, and a tiny Hugging Face folder writer with a built-in tokenizer (no downloaded model).
using System.Buffers.Binary;
using SharpInfer.Models;
using SharpInfer.Models.Gguf;
using SharpInfer.Models.SafeTensors;
using SharpInfer.Tokenization;

namespace SharpInfer.Tests.Quantization;

internal static class LlamaCppDequant
{
    private static float Fp16(ReadOnlySpan<byte> b, int at) => (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(b[at..]));

    // ggml-quants.c dequantize_row_q8_0: y[i*32 + j] = qs[j] * d
    public static void Q8_0(ReadOnlySpan<byte> x, float[] y)
    {
        for (int i = 0; i < x.Length / 34; i++)
        {
            var b = x.Slice(i * 34, 34);
            float d = Fp16(b, 0);
            for (int j = 0; j < 32; j++) y[i * 32 + j] = (sbyte)b[2 + j] * d;
        }
    }

    // dequantize_row_q4_0: x0 = (qs[j] & 0x0F) - 8, x1 = (qs[j] >> 4) - 8; y[j] = x0*d, y[j + 16] = x1*d
    public static void Q4_0(ReadOnlySpan<byte> x, float[] y)
    {
        for (int i = 0; i < x.Length / 18; i++)
        {
            var b = x.Slice(i * 18, 18);
            float d = Fp16(b, 0);
            for (int j = 0; j < 16; j++)
            {
                int x0 = (b[2 + j] & 0x0F) - 8, x1 = (b[2 + j] >> 4) - 8;
                y[i * 32 + j] = x0 * d;
                y[i * 32 + j + 16] = x1 * d;
            }
        }
    }

    // dequantize_row_q4_1: y[j] = x0*d + m, y[j + 16] = x1*d + m
    public static void Q4_1(ReadOnlySpan<byte> x, float[] y)
    {
        for (int i = 0; i < x.Length / 20; i++)
        {
            var b = x.Slice(i * 20, 20);
            float d = Fp16(b, 0), m = Fp16(b, 2);
            for (int j = 0; j < 16; j++)
            {
                int x0 = b[4 + j] & 0x0F, x1 = b[4 + j] >> 4;
                y[i * 32 + j] = x0 * d + m;
                y[i * 32 + j + 16] = x1 * d + m;
            }
        }
    }

    private static void GetScaleMinK4(int j, ReadOnlySpan<byte> q, out byte d, out byte m)
    {
        if (j < 4)
        {
            d = (byte)(q[j] & 63);
            m = (byte)(q[j + 4] & 63);
        }
        else
        {
            d = (byte)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
            m = (byte)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
        }
    }

    // dequantize_row_q4_K
    public static void Q4_K(ReadOnlySpan<byte> x, float[] y)
    {
        int yi = 0;
        for (int i = 0; i < x.Length / 144; i++)
        {
            var b = x.Slice(i * 144, 144);
            float d = Fp16(b, 0), min = Fp16(b, 2);
            var scales = b.Slice(4, 12);
            int q = 16, iss = 0;
            for (int j = 0; j < 256; j += 64)
            {
                GetScaleMinK4(iss + 0, scales, out byte sc, out byte m);
                float d1 = d * sc, m1 = min * m;
                GetScaleMinK4(iss + 1, scales, out sc, out m);
                float d2 = d * sc, m2 = min * m;
                for (int l = 0; l < 32; ++l) y[yi++] = d1 * (b[q + l] & 0xF) - m1;
                for (int l = 0; l < 32; ++l) y[yi++] = d2 * (b[q + l] >> 4) - m2;
                q += 32;
                iss += 2;
            }
        }
    }

    // dequantize_row_q6_K
    public static void Q6_K(ReadOnlySpan<byte> x, float[] y)
    {
        for (int i = 0; i < x.Length / 210; i++)
        {
            var b = x.Slice(i * 210, 210);
            float d = Fp16(b, 208);
            int ql = 0, qh = 128, sc = 192, yi = i * 256;
            for (int n = 0; n < 256; n += 128)
            {
                for (int l = 0; l < 32; ++l)
                {
                    int iss = l / 16;
                    int q1 = (sbyte)((b[ql + l + 0] & 0xF) | (((b[qh + l] >> 0) & 3) << 4)) - 32;
                    int q2 = (sbyte)((b[ql + l + 32] & 0xF) | (((b[qh + l] >> 2) & 3) << 4)) - 32;
                    int q3 = (sbyte)((b[ql + l + 0] >> 4) | (((b[qh + l] >> 4) & 3) << 4)) - 32;
                    int q4 = (sbyte)((b[ql + l + 32] >> 4) | (((b[qh + l] >> 6) & 3) << 4)) - 32;
                    y[yi + l + 0] = d * (sbyte)b[sc + iss + 0] * q1;
                    y[yi + l + 32] = d * (sbyte)b[sc + iss + 2] * q2;
                    y[yi + l + 64] = d * (sbyte)b[sc + iss + 4] * q3;
                    y[yi + l + 96] = d * (sbyte)b[sc + iss + 6] * q4;
                }
                yi += 128;
                ql += 64;
                qh += 32;
                sc += 8;
            }
        }
    }
}

internal static class QuantTestData
{
    /// <summary>A random finite f16 (normal or subnormal, either sign), as its bits.</summary>
    public static ushort RandomHalfBits(Random rng, bool allowSubnormal = true)
    {
        while (true)
        {
            ushort bits = (ushort)rng.Next(0, 65536);
            int exponent = (bits >> 10) & 0x1F;
            if (exponent == 31) continue;                      // inf / NaN
            if (exponent == 0 && !allowSubnormal) continue;
            if (exponent > 20) continue;                       // keep |d| moderate (< 64)
            return bits;
        }
    }

    /// <summary>Random bytes for <paramref name="blocks"/> blocks of a type, with finite f16 fields.</summary>
    public static byte[] RandomBlocks(GgmlType type, int blocks, Random rng)
    {
        (int size, int[] halfAt) = type switch
        {
            GgmlType.Q8_0 => (34, new[] { 0 }),
            GgmlType.Q4_0 => (18, new[] { 0 }),
            GgmlType.Q4_1 => (20, new[] { 0, 2 }),
            GgmlType.Q4_K => (144, new[] { 0, 2 }),
            GgmlType.Q6_K => (210, new[] { 208 }),
            _ => throw new ArgumentException(type.ToString()),
        };
        var data = new byte[size * blocks];
        rng.NextBytes(data);
        for (int b = 0; b < blocks; b++)
            foreach (int at in halfAt)
                BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(b * size + at), RandomHalfBits(rng));
        return data;
    }

    /// <summary>
    /// Bit-for-bit equality. <paramref name="zeroSignMayDiffer"/> accepts +0 for -0: llama.cpp's Q4_0
    /// computes (q - 8) * d, which is -0 for q = 8 and d &lt; 0, while q * d + (-8d) is +0 (the same value).
    /// </summary>
    public static void AssertBitwiseEqual(float[] expected, float[] actual, string what, bool zeroSignMayDiffer = false)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]) &&
                !(zeroSignMayDiffer && expected[i] == 0 && actual[i] == 0))
                Assert.Fail($"{what}: element {i}: expected {expected[i]:R} (0x{BitConverter.SingleToInt32Bits(expected[i]):X8}), got {actual[i]:R} (0x{BitConverter.SingleToInt32Bits(actual[i]):X8})");
    }

    public static byte[] Floats(ReadOnlySpan<float> values) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values).ToArray();

    public static byte[] Halves(ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i * 2), BitConverter.HalfToUInt16Bits((Half)values[i]));
        return bytes;
    }

    /// <summary>1 layer, hidden 32, 4 heads / 2 KV heads (head dim 8), intermediate 72 (ragged for g32), vocab 300.</summary>
    public static LlamaConfig TinyConfig { get; } = new()
    {
        VocabSize = 300, HiddenSize = 32, IntermediateSize = 72, NumLayers = 1,
        NumHeads = 4, NumKvHeads = 2, HeadDim = 8, MaxContext = 64, RmsNormEps = 1e-5f,
    };

    /// <summary>
    /// Writes a Hugging Face folder for <paramref name="config"/>: config.json (plus
    /// <paramref name="quantizationConfigJson"/> as quantization_config when given), a tokenizer.model
    /// made from the built-in vocabulary, and model.safetensors holding <paramref name="tensors"/>.
    /// </summary>
    public static void WriteHfFolder(string folder, LlamaConfig config, IReadOnlyList<SafeTensorsEntry> tensors, string? quantizationConfigJson = null)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "tokenizer.model"), BuiltInVocabulary.Create(config.VocabSize).Serialize());
        string quant = quantizationConfigJson is null ? "" : $",\n \"quantization_config\": {quantizationConfigJson}";
        File.WriteAllText(Path.Combine(folder, "config.json"), $$"""
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": {{config.VocabSize}},
             "hidden_size": {{config.HiddenSize}}, "intermediate_size": {{config.IntermediateSize}},
             "num_hidden_layers": {{config.NumLayers}}, "num_attention_heads": {{config.NumHeads}},
             "num_key_value_heads": {{config.NumKvHeads}}, "max_position_embeddings": {{config.MaxContext}},
             "rms_norm_eps": 1e-5, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2{{quant}}}
            """);
        SafeTensorsWriter.Write(Path.Combine(folder, "model.safetensors"), tensors);
    }

    /// <summary>Random N(0, std) values, deterministic per seed.</summary>
    public static float[] Gaussian(int count, int seed, float std = 0.05f)
    {
        var rng = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            values[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return values;
    }
}
