// CliTests.cs: `sharpinfer` end to end in-process: JSON output, logits dump, --help, and a
// clear message plus a non-zero exit code for every kind of bad input.
using System.Text.Json;
using SharpInfer.Cli;
using SharpInfer.Models;

namespace SharpInfer.Tests.Cli;

public class CliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void Help_ExplainsEveryGenerateOption()
    {
        var (code, output, _) = Run("generate", "--help");
        Assert.Equal(0, code);
        foreach (string option in new[] { "--model", "--prompt", "--max-tokens", "--temperature", "--top-k", "--top-p", "--min-p", "--seed", "--json", "--dump-logits", "--stop", "--backend" })
            Assert.Contains(option, output);
    }

    [SkippableFact]
    public void GenerateJson_HasTokensCountsAndRates()
    {
        string dir = TestModels.RequireStories260K();
        var (code, output, err) = Run("generate", "--model", Path.Combine(dir, "gguf", "stories260K-f32.gguf"), "--prompt", "Once upon a time", "--max-tokens", "16", "--json");
        Assert.True(code == 0, err);
        using var json = JsonDocument.Parse(output);
        var root = json.RootElement;
        Assert.Equal(5, root.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(16, root.GetProperty("generated_tokens").GetInt32());
        Assert.Equal(16, root.GetProperty("token_ids").GetArrayLength());
        Assert.StartsWith(", there was a little girl", root.GetProperty("text").GetString());
        Assert.Equal("length", root.GetProperty("finish_reason").GetString());
        Assert.True(root.GetProperty("decode_tokens_per_second").GetDouble() > 0);
        Assert.True(root.GetProperty("prefill_tokens_per_second").GetDouble() > 0);
    }

    [SkippableFact]
    public void DumpLogits_WritesEveryEvaluatedPosition()
    {
        string dir = TestModels.RequireStories260K();
        string path = Path.Combine(Path.GetTempPath(), $"si-logits-{Guid.NewGuid():N}.f32");
        try
        {
            var (code, _, err) = Run("generate", "--model", Path.Combine(dir, "hf"), "--max-tokens", "4", "--json", "--dump-logits", path);
            Assert.True(code == 0, err);
            using var sidecar = JsonDocument.Parse(File.ReadAllText(path + ".json"));
            int[] tokens = sidecar.RootElement.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            // 5 prompt positions + 3 fed-back generated tokens (the 4th is never evaluated).
            Assert.Equal(new[] { 1, 403, 407, 261, 378, 432, 383, 286 }, tokens);
            byte[] raw = File.ReadAllBytes(path);
            Assert.Equal(8 * 512 * 4, raw.Length);
            float[] ours = new float[8 * 512];
            Buffer.BlockCopy(raw, 0, ours, 0, raw.Length);
            byte[] refRaw = File.ReadAllBytes(Path.Combine(dir, "reference", "logits_once_upon_a_time_pos0-7.f32"));
            float[] expected = new float[refRaw.Length / 4];
            Buffer.BlockCopy(refRaw, 0, expected, 0, refRaw.Length);
            for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(ours[i] - expected[i]) <= 1e-4, $"element {i}");
        }
        finally
        {
            File.Delete(path);
            File.Delete(path + ".json");
        }
    }

    [Fact]
    public void QuantizedGguf_ActivationsOption_ChoosesBlockwiseInt8OrFloat()
    {
        string path = Path.Combine(Path.GetTempPath(), $"si-q4-{Guid.NewGuid():N}.gguf");
        SyntheticModel.Write(path, SyntheticModel.Tiny, SharpInfer.Models.Gguf.GgmlType.Q4_0, seed: 5);
        try
        {
            var (code, output, err) = Run("generate", "--model", path, "--max-tokens", "4", "--json", "--verbose");
            Assert.True(code == 0, err);
            var blockwise = System.Text.RegularExpressions.Regex.Match(err, @"activations: int8 per 32 columns for (\d+) quantized weights");
            Assert.True(blockwise.Success, err);
            int count = int.Parse(blockwise.Groups[1].Value);
            Assert.True(count > 0);
            using (var json = JsonDocument.Parse(output)) Assert.Equal(4, json.RootElement.GetProperty("generated_tokens").GetInt32());

            (code, output, err) = Run("generate", "--model", path, "--max-tokens", "4", "--json", "--verbose", "--activations", "float");
            Assert.True(code == 0, err);
            Assert.Contains($"activations: f32 for {count} quantized weights", err);
            using (var json = JsonDocument.Parse(output)) Assert.Equal(4, json.RootElement.GetProperty("generated_tokens").GetInt32());

            (code, _, err) = Run("generate", "--model", path, "--activations", "int3");
            Assert.Equal(ExitCodes.BadInput, code);
            Assert.Contains("int3", err);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Serve_HelpExplainsTheApi_AndBadOptionsFailBeforeLoading()
    {
        var (code, output, _) = Run("serve", "--help");
        Assert.Equal(0, code);
        foreach (string text in new[] { "/v1/chat/completions", "--port", "--chat-template", "--host" }) Assert.Contains(text, output);
        (code, _, string err) = Run("serve", "--port", "70000");
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("--port", err);
        (code, _, err) = Run("serve", "--chat-template", "/no/such/template.jinja");
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("--chat-template", err);
    }

    [Fact]
    public void Generate_PromptOverTheContext_PrintsOnlyTheError()
    {
        string model = Path.Combine(Path.GetTempPath(), $"si-long-prompt-{Guid.NewGuid():N}.gguf");
        SyntheticModel.Write(model, SyntheticModel.Tiny, SharpInfer.Models.Gguf.GgmlType.F32, seed: 4);
        try
        {
            // Tiny's context is 256 tokens; its byte-level vocabulary gives at least a token a byte.
            string prompt = string.Concat(Enumerable.Repeat("word ", 200));
            var (code, output, err) = Run("generate", "--model", model, "--prompt", prompt, "--max-tokens", "4");
            Assert.Equal(ExitCodes.BadInput, code);
            Assert.Equal("", output);  // the prompt is not echoed before it is refused
            Assert.Contains("prompt too long", err);
            Assert.Contains("context of 256", err);
        }
        finally
        {
            File.Delete(model);
        }
    }

    [Fact]
    public void Bench_Engine_Json_ReportsLoadTimeThroughputAndLatency()
    {
        string model = Path.Combine(Path.GetTempPath(), $"si-bench-engine-{Guid.NewGuid():N}.gguf");
        SyntheticModel.Write(model, SyntheticModel.Tiny, SharpInfer.Models.Gguf.GgmlType.F16, seed: 3);
        try
        {
            var (code, output, err) = Run("bench", "--model", model, "--concurrency", "2", "--prompt-len", "5", "--gen-len", "4", "--json");
            Assert.True(code == 0, err);
            using var json = JsonDocument.Parse(output);
            var root = json.RootElement;
            Assert.Equal("engine", root.GetProperty("mode").GetString());
            Assert.True(root.GetProperty("load_seconds").GetDouble() > 0, "the load is timed");
            Assert.True(root.GetProperty("requests_per_second").GetDouble() > 0);
            Assert.True(root.GetProperty("output_tokens_per_second").GetDouble() > 0);
            Assert.True(root.GetProperty("ttft_ms_p99").GetDouble() >= root.GetProperty("ttft_ms_p50").GetDouble());
        }
        finally
        {
            File.Delete(model);
        }
    }

    [Fact]
    public void Bench_WithLimits_ReportsBandwidthAndFlopsUtilization()
    {
        string model = Path.Combine(Path.GetTempPath(), $"si-bench-{Guid.NewGuid():N}.gguf");
        string limits = model + ".limits.json";
        SyntheticModel.Write(model, SyntheticModel.Tiny, SharpInfer.Models.Gguf.GgmlType.Q8_0, seed: 2);
        // The shape perf/machine-limits --json writes (only the fields the bench reads).
        File.WriteAllText(limits, """
            {"memory_read_gb_per_s": {"one_thread": 30.0, "all_threads": 50.0},
             "peak": [{"name": "f32_fma_avx512", "unit": "FLOP", "one_thread": 250.0, "all_threads": 500.0, "threads": 2},
                      {"name": "int8_vnni_avx512", "unit": "OP", "one_thread": 1000.0, "all_threads": 2000.0, "threads": 2}]}
            """);
        try
        {
            var (code, output, err) = Run("bench", "--model", model, "--limits", limits, "--prompt-tokens", "8", "--gen-tokens", "4", "--repeats", "1", "--json");
            Assert.True(code == 0, err);
            using var json = JsonDocument.Parse(output);
            var root = json.RootElement;
            double decode = root.GetProperty("decode_tokens_per_second").GetDouble();
            double bytes = root.GetProperty("decode_bytes_per_token").GetDouble();
            // MBU is bytes per step x steps/s over the stated 50 GB/s (rounded to 3 decimals).
            Assert.Equal(Math.Round(bytes * decode / 1e9 / 50.0, 3), root.GetProperty("decode_model_bandwidth_utilization").GetDouble(), 3);
            Assert.True(bytes > root.GetProperty("weight_bytes").GetDouble(), "K/V bytes are counted on top of the weights");
            // Q8_0 runs block-wise int8 activations: judged against the VNNI peak.
            Assert.Equal("int8_vnni_avx512", root.GetProperty("peak").GetString());
            Assert.Equal(2000.0, root.GetProperty("peak_gflops").GetDouble());
            Assert.True(root.GetProperty("prefill_model_flops_utilization").GetDouble() > 0);
            Assert.True(root.GetProperty("load_seconds").GetDouble() > 0, "the load (map, check, repack) is timed");

            File.WriteAllText(limits, "not json");
            (code, _, err) = Run("bench", "--model", model, "--limits", limits, "--repeats", "1");
            Assert.Equal(ExitCodes.BadInput, code);
            Assert.Contains("machine-limits", err);
        }
        finally
        {
            File.Delete(model);
            File.Delete(limits);
        }
    }

    [Fact]
    public void MissingModel_IsBadInput()
    {
        var (code, _, err) = Run("generate", "--model", "/nonexistent/model.gguf");
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("/nonexistent/model.gguf", err);
    }

    [Fact]
    public void BadGguf_IsBadInput_NotACrash()
    {
        string path = Path.Combine(Path.GetTempPath(), $"si-bad-{Guid.NewGuid():N}.gguf");
        File.WriteAllBytes(path, "NOPE-not-a-gguf-file-at-all"u8.ToArray());
        try
        {
            var (code, _, err) = Run("generate", "--model", path);
            Assert.Equal(ExitCodes.BadInput, code);
            Assert.StartsWith("sharpinfer: model error:", err);
            Assert.DoesNotContain("   at ", err);  // no stack trace for expected errors
        }
        finally { File.Delete(path); }
    }

    [SkippableFact]
    public void TruncatedModel_IsBadInput()
    {
        string dir = TestModels.RequireStories260K();
        string path = Path.Combine(Path.GetTempPath(), $"si-trunc-{Guid.NewGuid():N}.gguf");
        byte[] bytes = File.ReadAllBytes(Path.Combine(dir, "gguf", "stories260K-f32.gguf"));
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        try
        {
            var (code, _, err) = Run("generate", "--model", path);
            Assert.Equal(ExitCodes.BadInput, code);
            Assert.Contains("model error", err);
        }
        finally { File.Delete(path); }
    }

    [SkippableFact]
    public void PromptLongerThanContext_IsBadInput()
    {
        string dir = TestModels.RequireStories260K();
        string prompt = string.Concat(Enumerable.Repeat("Once upon a time ", 200));  // > 512 tokens
        var (code, _, err) = Run("generate", "--model", Path.Combine(dir, "gguf", "stories260K-f32.gguf"), "--prompt", prompt);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("prompt too long", err);
    }

    [Theory]
    [InlineData("--temperature", "-1")]
    [InlineData("--top-p", "2")]
    [InlineData("--max-tokens", "-5")]
    [InlineData("--threads", "-2")]
    public void BadSamplingParameters_AreBadInput(string option, string value)
    {
        var (code, _, err) = Run("generate", option, value);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("invalid argument", err);
    }

    [Theory]
    [InlineData("f16")]
    [InlineData("q8_0")]
    [InlineData("q4_0")]
    public void SyntheticModel_RunsThroughTheCli(string dtype)
    {
        string path = Path.Combine(Path.GetTempPath(), $"si-tiny-{Guid.NewGuid():N}.gguf");
        try
        {
            var (makeCode, _, makeErr) = Run("make-model", "--out", path, "--shape", "tiny", "--dtype", dtype);
            Assert.True(makeCode == 0, makeErr);
            var (code, output, err) = Run("generate", "--model", path, "--prompt", "hello", "--max-tokens", "8", "--json");
            Assert.True(code == 0, err);
            using var json = JsonDocument.Parse(output);
            Assert.Equal(8, json.RootElement.GetProperty("generated_tokens").GetInt32());
        }
        finally { File.Delete(path); }
    }
}
