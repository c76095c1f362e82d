// QuantizeCliTests.cs: `sharpinfer quantize` and `sharpinfer eval` in-process on a small synthetic
// model: help text, JSON results, a quantized model evaluated against its source, and bad input.
using System.Text.Json;
using SharpInfer.Cli;
using SharpInfer.Models;
using SharpInfer.Tests.Models;

namespace SharpInfer.Tests.Quantization;

public sealed class QuantizeCliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void QuantizeHelp_ExplainsTheOptionsAndTheAwareMethod()
    {
        var (code, output, _) = Run("quantize", "--help");
        Assert.Equal(0, code);
        foreach (string option in new[] { "--model", "--out", "--scheme", "--group", "--calib", "--method", "--calib-tokens" })
            Assert.Contains(option, output);
        Assert.Contains("AWQ", output);
        Assert.Contains("SmoothQuant", output);
        Assert.Contains("ragged", output);
        var (evalCode, evalHelp, _) = Run("eval", "--help");
        Assert.Equal(0, evalCode);
        foreach (string option in new[] { "--model", "--reference", "--text", "--json", "--ctx" })
            Assert.Contains(option, evalHelp);
    }

    [Fact]
    public void QuantizeThenEval_AgainstTheSource_ReportsKlAndAgreement()
    {
        using var dir = new TempDirectory();
        string source = dir.File("tiny.gguf");
        SyntheticModel.Write(source, SyntheticModel.Tiny, TensorDType.F32, seed: 5);
        string text = dir.File("text.txt");
        File.WriteAllText(text, string.Join(" ", Enumerable.Range(0, 200).Select(i => $"token{i % 13} {(char)('a' + i % 26)}.")));

        var (code, output, err) = Run("quantize", "--model", source, "--out", dir.File("q"), "--scheme", "int8", "--group", "32",
                                      "--method", "aware", "--calib", text, "--calib-tokens", "64", "--threads", "2", "--json");
        Assert.True(code == 0, err);
        using (var json = JsonDocument.Parse(output))
        {
            Assert.Equal("int8", json.RootElement.GetProperty("scheme").GetString());
            Assert.Equal(14, json.RootElement.GetProperty("tensors").GetArrayLength());
            Assert.Equal(8, json.RootElement.GetProperty("searches").GetArrayLength());
        }

        (code, output, err) = Run("eval", "--model", dir.File("q"), "--reference", source, "--text", text, "--ctx", "64", "--threads", "2", "--json");
        Assert.True(code == 0, err);
        using var eval = JsonDocument.Parse(output);
        var root = eval.RootElement;
        Assert.Equal(64, root.GetProperty("ctx").GetInt32());
        Assert.True(root.GetProperty("windows").GetInt32() >= 1);
        Assert.InRange(root.GetProperty("mean_kl").GetDouble(), 0, 0.01);
        Assert.InRange(root.GetProperty("top1_agreement").GetDouble(), 0.9, 1.0);
        Assert.True(root.GetProperty("perplexity").GetDouble() > 1);
    }

    [Fact]
    public void Quantize_HumanOutput_ListsFormatsAndRaggedGroups()
    {
        using var dir = new TempDirectory();
        string source = dir.File("tiny.gguf");
        SyntheticModel.Write(source, SyntheticModel.Tiny, TensorDType.F16, seed: 5);
        var (code, output, err) = Run("quantize", "--model", source, "--out", dir.File("q"), "--scheme", "int4", "--group", "48");
        Assert.True(code == 0, err);
        Assert.Contains("14 tensors int4 g48", output);
        // hidden 64 and ffn 160 are not multiples of 48: last groups of 16 columns.
        Assert.Contains("are not a multiple of group 48: each row's last group holds 16 columns (ragged last group", output);
    }

    [Theory]
    [InlineData("--scheme", "int3")]
    [InlineData("--method", "gptq")]
    public void Quantize_BadChoices_AreRejected(string option, string value)
    {
        string[] args = option == "--scheme" ? ["quantize", "--model", "m", "--out", "o", option, value]
            : ["quantize", "--model", "m", "--out", "o", "--scheme", "int8", option, value];
        var (code, _, err) = Run(args);
        Assert.NotEqual(0, code);
        Assert.Contains(value, err);
    }

    [Fact]
    public void Quantize_AwareWithoutCalibration_IsBadInput()
    {
        var (code, _, err) = Run("quantize", "--model", "m", "--out", "o", "--scheme", "int4", "--method", "aware");
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("--calib", err);
    }

    [Fact]
    public void Eval_TextShorterThanAWindow_IsBadInput()
    {
        using var dir = new TempDirectory();
        string source = dir.File("tiny.gguf");
        SyntheticModel.Write(source, SyntheticModel.Tiny, TensorDType.F32, seed: 5);
        File.WriteAllText(dir.File("t.txt"), "just a few words");
        var (code, _, err) = Run("eval", "--model", source, "--text", dir.File("t.txt"), "--ctx", "64");
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("fewer than one window of 64", err);
    }
}
