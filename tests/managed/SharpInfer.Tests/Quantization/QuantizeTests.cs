// QuantizeTests.cs: RTN math (int8 symmetric, int4 affine, ragged last group), the quantize tool's
// output (a "sharpinfer" folder that loads with the formats asked for), the activation-aware fold
// keeping the f32 function unchanged, bad "sharpinfer" checkpoints, and the evaluation metrics.
using SharpInfer.Backends;
using SharpInfer.Llama;
using SharpInfer.Models;
using SharpInfer.Models.SafeTensors;
using SharpInfer.Quantization;
using SharpInfer.Tests.Models;

namespace SharpInfer.Tests.Quantization;

public sealed class QuantizeTests
{
    [Theory]
    [InlineData(QuantFormat.Int8, 32)]
    [InlineData(QuantFormat.Int8, 172)]
    [InlineData(QuantFormat.Int4, 32)]
    [InlineData(QuantFormat.Int4, 64)]
    public void Rtn_ErrorIsWithinHalfAStep_WithARaggedLastGroup(QuantFormat format, int group)
    {
        const int rows = 5, columns = 172; // stories260K's down projection K
        float[] w = QuantTestData.Gaussian(rows * columns, seed: 9);
        w[3] = 0.9f; // an outlier
        using var q = RtnQuantizer.Quantize(w, rows, columns, format, group);
        Assert.Equal((columns + group - 1) / group, q.GroupCount);
        Assert.Equal(columns - (q.GroupCount - 1) * group, q.LastGroupSize);
        var row = new float[columns];
        for (int r = 0; r < rows; r++)
        {
            q.DequantizeRow(r, row);
            var scales = q.RowScales(r);
            for (int c = 0; c < columns; c++)
            {
                float step = scales[c / group];
                Assert.True(MathF.Abs(row[c] - w[r * columns + c]) <= step * 0.5f * 1.0001f + 1e-7f, $"row {r} col {c}");
            }
            if (format == QuantFormat.Int4)
                for (int c = 0; c < columns; c++) Assert.InRange(q.GetValue(r, c), 0, 15);
            else
                for (int c = 0; c < columns; c++) Assert.InRange(q.GetValue(r, c), -127, 127);
        }
    }

    [Fact]
    public void Rtn_ConstantGroup_IsExact()
    {
        float[] w = Enumerable.Repeat(0.25f, 40).Concat(Enumerable.Repeat(0f, 24)).ToArray();
        using var q4 = RtnQuantizer.Quantize(w, 1, 64, QuantFormat.Int4, 32);
        using var q8 = RtnQuantizer.Quantize(w, 1, 64, QuantFormat.Int8, 32);
        Assert.Equal(w, q4.Dequantize());
        Assert.Equal(w, q8.Dequantize());
    }

    // ---- the quantize tool on a synthetic GGUF (no downloaded model) ---------------------------------

    private static string WriteSyntheticGguf(TempDirectory dir)
    {
        string path = dir.File("tiny.gguf");
        SyntheticModel.Write(path, SyntheticModel.Tiny, TensorDType.F32, seed: 7);
        return path;
    }

    private static string CalibrationText { get; } = string.Join(" ", Enumerable.Range(0, 300).Select(i => $"word{i % 37} and {(char)('a' + i % 26)}x{i % 11}."));

    private static float[] Logits(string modelPath, int[] ids)
    {
        using var checkpoint = ModelLoader.Load(modelPath);
        return HfInt4RepackTests.ForwardAll(checkpoint, ids);
    }

    [Theory]
    [InlineData(QuantScheme.Int4)]
    [InlineData(QuantScheme.W8A8)]
    public void AwareFold_LeavesTheF32FunctionUnchanged(QuantScheme scheme)
    {
        // Scales folded into norms and v/up rows, q/k permuted to HF order, config and tokenizer
        // rewritten: written dense, the model must compute what the source GGUF computes.
        using var dir = new TempDirectory();
        string source = WriteSyntheticGguf(dir);
        var result = ModelQuantizer.Run(source, dir.File("folded"), new QuantizeOptions
        {
            Scheme = scheme, GroupSize = 32, Method = QuantMethod.Aware, CalibrationText = CalibrationText,
            CalibrationTokens = 128, GridPoints = 4, WriteDenseLinears = true,
        });
        Assert.Equal(4 * SyntheticModel.Tiny.NumLayers, result.Searches.Count);
        Assert.Contains(result.Searches, s => s.Alpha > 0); // some scale was actually folded
        Assert.All(result.Searches, s => Assert.True(s.Error <= s.RtnError, $"{s.Group}: {s.Error} > {s.RtnError}"));

        int[] ids = [1, 300, 45, 120, 7, 99, 260, 400, 3];
        float[] expected = Logits(source, ids), actual = Logits(dir.File("folded"), ids);
        double worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        Assert.True(worst < 1e-4, $"max |logit difference| {worst:E2}");
    }

    [Theory]
    [InlineData(QuantScheme.Int8, 32)]
    [InlineData(QuantScheme.Int4, 32)]
    [InlineData(QuantScheme.W8A8, 0)]
    public void Rtn_Output_LoadsWithTheRequestedFormat_MemoryMapped(QuantScheme scheme, int group)
    {
        using var dir = new TempDirectory();
        string source = WriteSyntheticGguf(dir);
        var result = ModelQuantizer.Run(source, dir.File("q"), new QuantizeOptions { Scheme = scheme, GroupSize = group });
        ModelQuantizer.Run(source, dir.File("dense"), new QuantizeOptions { Scheme = scheme, GroupSize = group, WriteDenseLinears = true });
        var config = SyntheticModel.Tiny;
        Assert.Equal(7 * config.NumLayers, result.Tensors.Count);
        Assert.Contains(result.Notes, n => n.Contains("rotate-half"));

        using var quantized = ModelLoader.Load(dir.File("q"));
        using var dense = ModelLoader.Load(dir.File("dense"));
        Assert.Equal("hf", quantized.Format);
        Assert.Equal(config.VocabSize, quantized.Tokenizer.VocabSize);
        foreach (var info in result.Tensors)
        {
            var tensor = quantized.GetTensor(info.Name);
            var q = tensor.Quantized!;
            Assert.True(q.IsMapped, info.Name);
            Assert.Equal(scheme.WeightFormat(), q.Format);
            Assert.Equal(scheme.Activations(), q.Activations);
            Assert.Equal(group == 0 ? info.Columns : group, q.GroupSize);
            // Within half a step of the (permuted) source values.
            float[] original = dense.GetTensor(info.Name).ToFloat32();
            var row = new float[q.Columns];
            for (int r = 0; r < q.Rows; r++)
            {
                q.DequantizeRow(r, row);
                var scales = q.RowScales(r);
                for (int c = 0; c < q.Columns; c++)
                    Assert.True(MathF.Abs(row[c] - original[r * q.Columns + c]) <= scales[c / q.GroupSize] * 0.5001f + 1e-7f, $"{info.Name} [{r}, {c}]");
            }
        }
        Assert.False(quantized.GetTensor("token_embd.weight").IsQuantized);
        Assert.False(quantized.GetTensor("output.weight").IsQuantized);
    }

    [SkippableFact]
    public void Stories260K_FromGgufAndFromHf_QuantizeToTheSameBytes()
    {
        // The GGUF stores q/k in adjacent-pair order and the HF folder in rotate-half order; after the
        // quantizer's permutation both sources must give byte-identical quantized tensors.
        string dir = TestModels.RequireStories260K();
        using var temp = new TempDirectory();
        var options = new QuantizeOptions { Scheme = QuantScheme.Int4, GroupSize = 32 };
        ModelQuantizer.Run(Path.Combine(dir, "gguf", "stories260K-f32.gguf"), temp.File("from-gguf"), options);
        ModelQuantizer.Run(Path.Combine(dir, "hf"), temp.File("from-hf"), options);
        using var a = SafeTensorsFile.Open(Path.Combine(temp.File("from-gguf"), "model.safetensors"));
        using var b = SafeTensorsFile.Open(Path.Combine(temp.File("from-hf"), "model.safetensors"));
        var bTensors = b.Tensors.ToDictionary(t => t.Name);
        int compared = 0;
        foreach (var t in a.Tensors.Where(t => t.Name.EndsWith(".qweight") || t.Name.EndsWith(".scales") || t.Name.EndsWith(".offsets")))
        {
            var u = bTensors[t.Name];
            Assert.True(a.File.Span(t.FileOffset, (int)t.ByteLength).SequenceEqual(b.File.Span(u.FileOffset, (int)u.ByteLength)), t.Name);
            compared++;
        }
        Assert.Equal(5 * 7 * 3, compared);
    }

    [Fact]
    public void AlreadyQuantizedInput_IsRejected()
    {
        using var dir = new TempDirectory();
        string source = WriteSyntheticGguf(dir);
        ModelQuantizer.Run(source, dir.File("q"), new QuantizeOptions { Scheme = QuantScheme.Int8, GroupSize = 32 });
        var e = Assert.Throws<ArgumentException>(() => ModelQuantizer.Run(dir.File("q"), dir.File("qq"), new QuantizeOptions()));
        Assert.Contains("already quantized", e.Message);
    }

    [Fact]
    public void AwareWithoutCalibration_IsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => new QuantizeOptions { Method = QuantMethod.Aware }.Validate());
        Assert.Contains("--calib", e.Message);
    }

    // ---- bad "sharpinfer" checkpoints ----------------------------------------------------------------

    private static string WriteQuantizedFolder(TempDirectory dir)
    {
        string source = WriteSyntheticGguf(dir);
        ModelQuantizer.Run(source, dir.File("q"), new QuantizeOptions { Scheme = QuantScheme.Int4, GroupSize = 32 });
        return dir.File("q");
    }

    private static void RewriteTensors(string folder, Func<List<SafeTensorsEntry>, List<SafeTensorsEntry>> edit)
    {
        string path = Path.Combine(folder, "model.safetensors");
        List<SafeTensorsEntry> entries;
        using (var file = SafeTensorsFile.Open(path))
            entries = file.Tensors.Select(t => new SafeTensorsEntry(t.Name, t.DType, t.Shape, file.File.Span(t.FileOffset, (int)t.ByteLength).ToArray())).ToList();
        SafeTensorsWriter.Write(path, edit(entries));
    }

    [Fact]
    public void SharpInferFormat_ScalesThatDoNotFitTheGroup_IsAnErrorNamingTheTensor()
    {
        using var dir = new TempDirectory();
        string folder = WriteQuantizedFolder(dir);
        string config = File.ReadAllText(Path.Combine(folder, "config.json"));
        // Claim group 16 for the down projection while its scales hold ceil(160/32) groups per row.
        File.WriteAllText(Path.Combine(folder, "config.json"),
            config.Replace("\"model.layers.0.mlp.down_proj\": {\n        \"format\": \"int4\",\n        \"group_size\": 32", "\"model.layers.0.mlp.down_proj\": {\n        \"format\": \"int4\",\n        \"group_size\": 16"));
        Assert.NotEqual(config, File.ReadAllText(Path.Combine(folder, "config.json")));
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(folder).Dispose());
        Assert.Contains("tensor 'model.layers.0.mlp.down_proj.scales' has 5 groups per row, but group size 16", e.Message);
        Assert.Contains("does not fit", e.Message);
    }

    [Fact]
    public void SharpInferFormat_QweightOfTheWrongShape_IsAnError()
    {
        using var dir = new TempDirectory();
        string folder = WriteQuantizedFolder(dir);
        RewriteTensors(folder, entries => entries.Select(e => e.Name == "model.layers.1.self_attn.k_proj.qweight"
            ? e with { Shape = [e.Shape[0], e.Shape[1] / 2], Data = e.Data[..(e.Data.Length / 2)] } : e).ToList());
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(folder).Dispose());
        Assert.Contains("tensor 'model.layers.1.self_attn.k_proj.qweight' is U8 [32, 16], but int4 [32, 64] needs U8 [32, 32]", e.Message);
    }

    [Fact]
    public void SharpInferFormat_QuantizedTensorWithoutConfigEntry_IsAnError()
    {
        using var dir = new TempDirectory();
        string folder = WriteQuantizedFolder(dir);
        string config = File.ReadAllText(Path.Combine(folder, "config.json"));
        File.WriteAllText(Path.Combine(folder, "config.json"), config.Replace("\"model.layers.1.mlp.up_proj\"", "\"model.layers.1.mlp.up_projection\""));
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(folder).Dispose());
        Assert.Contains("'model.layers.1.mlp.up_proj.qweight' has no entry in quantization_config.modules", e.Message);
    }

    // ---- evaluation ------------------------------------------------------------------------------

    [Fact]
    public void Evaluate_AgainstItself_HasZeroKlAndFullAgreement()
    {
        using var dir = new TempDirectory();
        string source = WriteSyntheticGguf(dir);
        using var checkpoint = ModelLoader.Load(source);
        using var backend = ComputeBackend.Open(BackendKind.Cpu, threads: 2);
        using var model = new LlamaModel(checkpoint, backend);
        var tokens = checkpoint.Tokenizer.Encode(CalibrationText, addBos: false);
        var r = Evaluation.Evaluate(model, model, tokens, context: 64, checkpoint.Tokenizer.BosId);
        Assert.Equal(tokens.Length / 64, r.Windows);
        Assert.Equal(r.Windows * (64 - 1 - 32), r.ScoredTokens);
        Assert.True(r.Perplexity > 1 && double.IsFinite(r.Perplexity));
        Assert.Equal(r.Perplexity, r.ReferencePerplexity!.Value, 10);
        Assert.Equal(0, r.MeanKl!.Value, 9);
        Assert.Equal(1.0, r.Top1Agreement!.Value);
    }

    [Fact]
    public void MeanKl_OfKnownDistributions()
    {
        // P = softmax(0, 0) = (1/2, 1/2), Q = softmax(ln 3, 0) = (3/4, 1/4): KL = 1/2 ln(2/3) + 1/2 ln 2.
        float[] p = [0f, 0f];
        float[] q = [MathF.Log(3f), 0f];
        Assert.Equal(0.5 * Math.Log(2.0 / 3.0) + 0.5 * Math.Log(2.0), Evaluation.MeanKl(p, q, 2), 6);
    }
}
