// HfInt4RepackTests.cs: AutoGPTQ (v1 and v2 zero conventions) and AutoAWQ (interleaved nibbles)
// int4 checkpoints repack exactly to w = (q - z) * s, load as quantized weights through a small
// synthetic Hugging Face folder (ragged last group included), and bad checkpoints (act-order,
// group size that does not fit, qweight shape that disagrees with the config) are clear errors.
using SharpInfer.Backends;
using SharpInfer.Llama;
using SharpInfer.Models;
using SharpInfer.Models.SafeTensors;
using SharpInfer.Quantization;
using SharpInfer.Tests.Models;

namespace SharpInfer.Tests.Quantization;

public sealed class HfInt4RepackTests
{
    /// <summary>A random int4 linear: q [out, in], zeros [groups, out], f16 scales [groups, out], and w = (q - z) * s.</summary>
    private sealed record Int4Linear(byte[] Q, byte[] Zeros, float[] Scales, float[] Expected, int Out, int In, int Group)
    {
        public int Groups => (In + Group - 1) / Group;

        public static Int4Linear Random(int outFeatures, int inFeatures, int group, int seed, int minZero = 0, int maxZero = 15)
        {
            var rng = new Random(seed);
            int groups = (inFeatures + group - 1) / group;
            var q = new byte[outFeatures * inFeatures];
            var zeros = new byte[groups * outFeatures];
            var scales = new float[groups * outFeatures];
            for (int i = 0; i < q.Length; i++) q[i] = (byte)rng.Next(16);
            for (int i = 0; i < zeros.Length; i++) zeros[i] = (byte)rng.Next(minZero, maxZero + 1);
            for (int i = 0; i < scales.Length; i++) scales[i] = (float)(Half)(0.002 + 0.02 * rng.NextDouble());
            var expected = new float[outFeatures * inFeatures];
            for (int o = 0; o < outFeatures; o++)
                for (int k = 0; k < inFeatures; k++)
                {
                    int g = k / group;
                    expected[o * inFeatures + k] = (q[o * inFeatures + k] - zeros[g * outFeatures + o]) * scales[g * outFeatures + o];
                }
            return new Int4Linear(q, zeros, scales, expected, outFeatures, inFeatures, group);
        }

        /// <summary>The safetensors entries of this linear in GPTQ (v1 stores zero - 1) or AWQ form.</summary>
        public List<SafeTensorsEntry> Entries(string module, string method, bool gptqV1 = true)
        {
            byte[] zeros = method == "gptq" && gptqV1 ? Zeros.Select(z => (byte)(z - 1)).ToArray() : Zeros;
            var list = new List<SafeTensorsEntry>
            {
                method == "gptq"
                    ? new(module + ".qweight", "I32", [(In + 7) / 8, Out], HfInt4Repack.PackGptqWeight(Q, Out, In))
                    : new(module + ".qweight", "I32", [In, (Out + 7) / 8], HfInt4Repack.PackAwqWeight(Q, Out, In)),
                new(module + ".qzeros", "I32", [Groups, (Out + 7) / 8], HfInt4Repack.PackZeros(zeros, Groups, Out, awqOrder: method == "awq")),
                new(module + ".scales", "F16", [Groups, Out], QuantTestData.Halves(Scales)),
            };
            if (method == "gptq")
                list.Add(new(module + ".g_idx", "I32", [In], Enumerable.Range(0, In).SelectMany(k => BitConverter.GetBytes(k / Group)).ToArray()));
            return list;
        }
    }

    private static HfInt4Repack.Packed Packed(SafeTensorsEntry e) => new(e.Data, e.DType, e.Shape);

    [Theory]
    [InlineData("gptq", true)]
    [InlineData("gptq", false)]
    [InlineData("awq", false)]
    public void Repack_IsExact_IncludingARaggedLastGroup(string method, bool gptqV1)
    {
        // 24 outputs, 72 inputs in groups of 32: the last group of each row has 8 columns.
        var linear = Int4Linear.Random(24, 72, 32, seed: 5, minZero: method == "gptq" && gptqV1 ? 1 : 0);
        var e = linear.Entries("m", method, gptqV1);
        using var weight = method == "gptq"
            ? HfInt4Repack.RepackGptq("m", Packed(e[0]), Packed(e[1]), Packed(e[2]), 24, 72, 32, zeroPlusOne: gptqV1)
            : HfInt4Repack.RepackAwq("m", Packed(e[0]), Packed(e[1]), Packed(e[2]), 24, 72, 32);
        Assert.Equal(QuantFormat.Int4, weight.Format);
        Assert.Equal(3, weight.GroupCount);
        Assert.True(weight.IsRagged);
        Assert.Equal(8, weight.LastGroupSize);
        for (int o = 0; o < 24; o++)
            for (int k = 0; k < 72; k++)
                Assert.Equal(linear.Q[o * 72 + k], weight.GetValue(o, k));
        QuantTestData.AssertBitwiseEqual(linear.Expected, weight.Dequantize(), $"{method} dequantized");
    }

    [Fact]
    public void Awq_NibbleOrder_IsInterleaved()
    {
        // Output column o of a packed word sits in nibble [0, 4, 1, 5, 2, 6, 3, 7][o % 8].
        var q = new byte[8];
        for (int o = 0; o < 8; o++) q[o] = (byte)(o + 1);
        uint word = BitConverter.ToUInt32(HfInt4Repack.PackAwqWeight(q, 8, 1));
        Assert.Equal(0x86427531u, word);
        uint gptq = BitConverter.ToUInt32(HfInt4Repack.PackGptqWeight([1, 2, 3, 4, 5, 6, 7, 8], 1, 8));
        Assert.Equal(0x87654321u, gptq);
    }

    // ---- whole checkpoints -------------------------------------------------------------------------

    private static readonly string[] Modules =
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

    private static (int Out, int In) ShapeOf(string module, LlamaConfig c) => module switch
    {
        "self_attn.q_proj" => (c.NumHeads * c.HeadDim, c.HiddenSize),
        "self_attn.k_proj" or "self_attn.v_proj" => (c.NumKvHeads * c.HeadDim, c.HiddenSize),
        "self_attn.o_proj" => (c.HiddenSize, c.NumHeads * c.HeadDim),
        "mlp.gate_proj" or "mlp.up_proj" => (c.IntermediateSize, c.HiddenSize),
        _ => (c.HiddenSize, c.IntermediateSize),
    };

    /// <summary>The float tensors every folder shares (embedding and norms).</summary>
    private static List<SafeTensorsEntry> FloatTensors(LlamaConfig c) =>
    [
        new("model.embed_tokens.weight", "F32", [c.VocabSize, c.HiddenSize], QuantTestData.Floats(QuantTestData.Gaussian(c.VocabSize * c.HiddenSize, 1, 0.5f))),
        new("model.layers.0.input_layernorm.weight", "F32", [c.HiddenSize], QuantTestData.Floats(Enumerable.Repeat(1f, c.HiddenSize).ToArray())),
        new("model.layers.0.post_attention_layernorm.weight", "F32", [c.HiddenSize], QuantTestData.Floats(Enumerable.Repeat(1f, c.HiddenSize).ToArray())),
        new("model.norm.weight", "F32", [c.HiddenSize], QuantTestData.Floats(Enumerable.Repeat(1f, c.HiddenSize).ToArray())),
    ];

    /// <summary>Writes a quantized folder and its dense twin (same values in F32); returns the expected weights.</summary>
    private static Dictionary<string, float[]> WriteQuantizedAndDense(string quantFolder, string? denseFolder, string method, int group,
                                                                      string quantConfig, Action<List<SafeTensorsEntry>>? edit = null)
    {
        var c = QuantTestData.TinyConfig;
        var quantized = FloatTensors(c);
        var dense = FloatTensors(c);
        var expected = new Dictionary<string, float[]>();
        int seed = 100;
        foreach (string module in Modules)
        {
            var (o, i) = ShapeOf(module, c);
            var linear = Int4Linear.Random(o, i, Math.Min(group, i), seed++, minZero: method == "gptq" ? 1 : 0);
            string name = $"model.layers.0.{module}";
            quantized.AddRange(linear.Entries(name, method));
            dense.Add(new SafeTensorsEntry(name + ".weight", "F32", [o, i], QuantTestData.Floats(linear.Expected)));
            expected[LlamaTensorNames.FromHuggingFace(name + ".weight")!] = linear.Expected;
        }
        edit?.Invoke(quantized);
        QuantTestData.WriteHfFolder(quantFolder, c, quantized, quantConfig);
        if (denseFolder is not null) QuantTestData.WriteHfFolder(denseFolder, c, dense);
        return expected;
    }

    private const string Gptq = """{"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": false, "sym": false}""";
    private const string Awq = """{"quant_method": "awq", "bits": 4, "group_size": 32, "zero_point": true, "version": "gemm"}""";

    [Theory]
    [InlineData("gptq")]
    [InlineData("awq")]
    public void Checkpoint_LoadsEveryLinearAsInt4_WithExactValues(string method)
    {
        using var dir = new TempDirectory();
        var expected = WriteQuantizedAndDense(dir.File("q"), null, method, 32, method == "gptq" ? Gptq : Awq);
        using var checkpoint = ModelLoader.Load(dir.File("q"));
        foreach (var (name, values) in expected)
        {
            var tensor = checkpoint.GetTensor(name);
            Assert.True(tensor.IsQuantized, name);
            Assert.Equal(method, tensor.SourceType);
            Assert.Equal(QuantFormat.Int4, tensor.Quantized!.Format);
            QuantTestData.AssertBitwiseEqual(values, tensor.ToFloat32(), name);
        }
        Assert.True(checkpoint.GetTensor("blk.0.ffn_down.weight").Quantized!.IsRagged); // K = 72, group 32
        Assert.False(checkpoint.GetTensor("token_embd.weight").IsQuantized);
    }

    [Theory]
    [InlineData("gptq")]
    [InlineData("awq")]
    public void Checkpoint_Forward_MatchesItsDenseTwin(string method)
    {
        using var dir = new TempDirectory();
        WriteQuantizedAndDense(dir.File("q"), dir.File("d"), method, 32, method == "gptq" ? Gptq : Awq);
        using var quantized = ModelLoader.Load(dir.File("q"));
        using var dense = ModelLoader.Load(dir.File("d"));
        int[] ids = [1, 40, 77, 200, 5, 299, 123, 64];
        float[] a = ForwardAll(quantized, ids), b = ForwardAll(dense, ids);
        double worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]) / (1 + Math.Abs(b[i])));
        Assert.True(worst < 1e-4, $"max relative logit difference {worst:E2}");
    }

    internal static float[] ForwardAll(ModelCheckpoint checkpoint, int[] ids, BackendKind kind = BackendKind.Cpu)
    {
        using var backend = ComputeBackend.Open(kind, threads: 2);
        using var model = new LlamaModel(checkpoint, backend);
        using var cache = model.CreateCache(ids.Length);
        var logits = new float[ids.Length * model.VocabSize];
        model.Forward(ids, cache, logits, allPositions: true);
        return logits;
    }

    // ---- bad checkpoints ----------------------------------------------------------------------------

    private static ModelFormatException LoadFails(string path, params string[] phrases)
    {
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(path).Dispose());
        foreach (string phrase in phrases) Assert.Contains(phrase, e.Message);
        return e;
    }

    [Fact]
    public void Gptq_ActOrder_IsUnsupported()
    {
        using var dir = new TempDirectory();
        WriteQuantizedAndDense(dir.File("q"), null, "gptq", 32, Gptq.Replace("\"desc_act\": false", "\"desc_act\": true"));
        LoadFails(dir.File("q"), "act-order (desc_act = true) is not supported");
    }

    [Fact]
    public void Gptq_PermutedGIdx_IsUnsupported_NamingTheTensor()
    {
        using var dir = new TempDirectory();
        WriteQuantizedAndDense(dir.File("q"), null, "gptq", 32, Gptq, edit: tensors =>
        {
            int i = tensors.FindIndex(t => t.Name == "model.layers.0.mlp.down_proj.g_idx");
            var gIdx = tensors[i].Data.ToArray();
            (gIdx[0], gIdx[4 * 40]) = (gIdx[4 * 40], gIdx[0]); // channel 0 claims group 1
            tensors[i] = tensors[i] with { Data = gIdx };
        });
        LoadFails(dir.File("q"), "'model.layers.0.mlp.down_proj.g_idx'", "act-order");
    }

    [Fact]
    public void GroupSizeThatDoesNotFit_IsAnErrorNamingTheTensor()
    {
        // The config says group 16, but the tensors were made with group 32: scales rows != ceil(K/16).
        using var dir = new TempDirectory();
        WriteQuantizedAndDense(dir.File("q"), null, "gptq", 32, Gptq.Replace("\"group_size\": 32", "\"group_size\": 16"),
            edit: tensors => tensors.RemoveAll(t => t.Name.EndsWith(".g_idx")));
        LoadFails(dir.File("q"), "tensor 'model.layers.0.", ".scales' has", "the stated group size does not fit this tensor");
    }

    [Fact]
    public void QweightShapeThatDisagreesWithConfig_IsAnError()
    {
        using var dir = new TempDirectory();
        WriteQuantizedAndDense(dir.File("q"), null, "awq", 32, Awq, edit: tensors =>
        {
            int i = tensors.FindIndex(t => t.Name == "model.layers.0.self_attn.q_proj.qweight");
            tensors[i] = tensors[i] with { Shape = [16, 8], Data = new byte[16 * 8 * 4] };
        });
        LoadFails(dir.File("q"), "tensor 'model.layers.0.self_attn.q_proj.qweight' is I32 [16, 8]", "disagrees with the config");
    }

    [Theory]
    [InlineData("""{"quant_method": "awq", "bits": 4, "group_size": 32, "version": "gemv"}""", "AWQ version 'gemv' is not supported")]
    [InlineData("""{"quant_method": "gptq", "bits": 8, "group_size": 32}""", "GPTQ with 8 bits is not supported")]
    [InlineData("""{"quant_method": "bitsandbytes"}""", "quant_method 'bitsandbytes' is not supported")]
    [InlineData("""{"quant_method": "gptq", "bits": 4, "group_size": 0}""", "group_size 0 must be -1 or positive")]
    public void UnsupportedQuantizationConfig_IsAClearError(string config, string phrase)
    {
        using var dir = new TempDirectory();
        WriteQuantizedAndDense(dir.File("q"), null, "gptq", 32, config);
        LoadFails(dir.File("q"), "quantization_config: " + phrase);
    }

    [Fact]
    public void MissingQzeros_IsAnErrorNamingTheModule()
    {
        using var dir = new TempDirectory();
        WriteQuantizedAndDense(dir.File("q"), null, "gptq", 32, Gptq, edit: t => t.RemoveAll(e => e.Name == "model.layers.0.mlp.up_proj.qzeros"));
        LoadFails(dir.File("q"), "quantized module 'model.layers.0.mlp.up_proj' has no tensor 'model.layers.0.mlp.up_proj.qzeros'");
    }
}
