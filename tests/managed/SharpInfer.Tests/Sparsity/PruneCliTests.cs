// PruneCliTests.cs: `sharpinfer prune` in-process: help text, the JSON summary, the written model
// generating and evaluating against its source, and bad command lines.
using System.Text.Json;
using SharpInfer.Cli;
using SharpInfer.Models;
using SharpInfer.Tests.Models;

namespace SharpInfer.Tests.Sparsity;

public sealed class PruneCliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void PruneHelp_ExplainsPatternsMethodsAndVerbose()
    {
        var (code, output, _) = Run("prune", "--help");
        Assert.Equal(0, code);
        foreach (string option in new[] { "--model", "--out", "--pattern", "--sparsity", "--method", "--calib", "--calib-tokens", "--json" })
            Assert.Contains(option, output);
        Assert.Contains("2:4", output);
        Assert.Contains("unstructured", output);
        Assert.Contains("wanda", output);
        Assert.Contains("L2 norm", output);
        Assert.Contains("LM head stay dense", output);
        var (generateCode, generateHelp, _) = Run("generate", "--help");
        Assert.Equal(0, generateCode);
        Assert.Contains("--verbose", generateHelp);
        Assert.Contains("--verbose", Run("bench", "--help").Out);
    }

    [Fact]
    public void PruneWanda_ThenGenerateAndEval_AgainstTheSource()
    {
        using var dir = new TempDirectory();
        string source = dir.File("tiny.gguf");
        SyntheticModel.Write(source, SyntheticModel.Tiny, TensorDType.F32, seed: 8);
        string text = dir.File("text.txt");
        File.WriteAllText(text, string.Join(" ", Enumerable.Range(0, 200).Select(i => $"token{i % 17} {(char)('a' + i % 26)}.")));

        var (code, output, err) = Run("prune", "--model", source, "--out", dir.File("p"), "--pattern", "unstructured", "--sparsity", "60%",
                                      "--method", "wanda", "--calib", text, "--calib-tokens", "64", "--threads", "2", "--json");
        Assert.True(code == 0, err);
        using (var json = JsonDocument.Parse(output))
        {
            var root = json.RootElement;
            Assert.Equal("unstructured", root.GetProperty("pattern").GetString());
            Assert.Equal("wanda", root.GetProperty("method").GetString());
            Assert.InRange(root.GetProperty("calibration_tokens").GetInt32(), 1, 64);
            Assert.Equal(14, root.GetProperty("tensors").GetArrayLength());
            Assert.InRange(root.GetProperty("achieved_sparsity").GetDouble(), 0.59, 0.61);
            Assert.True(root.GetProperty("pruned_packed_bytes").GetInt64() < root.GetProperty("pruned_dense_bytes").GetInt64());
            foreach (var t in root.GetProperty("tensors").EnumerateArray())
                Assert.Equal("bitmask", t.GetProperty("format").GetString());
        }

        (code, output, err) = Run("generate", "--model", dir.File("p"), "--max-tokens", "8", "--threads", "2", "--json", "--verbose");
        Assert.True(code == 0, err);
        using (var gen = JsonDocument.Parse(output))
            Assert.Equal(8, gen.RootElement.GetProperty("generated_tokens").GetInt32());
        Assert.Contains("sparse kernels (14 sparse weights", err);

        (code, output, err) = Run("eval", "--model", dir.File("p"), "--reference", source, "--text", text, "--ctx", "64", "--threads", "2", "--json");
        Assert.True(code == 0, err);
        using var eval = JsonDocument.Parse(output);
        double kl = eval.RootElement.GetProperty("mean_kl").GetDouble();
        Assert.True(kl > 0, $"pruning 60% of the weights changed nothing (KL {kl})");
        Assert.InRange(eval.RootElement.GetProperty("top1_agreement").GetDouble(), 0, 1);
    }

    [Fact]
    public void Prune24_HumanOutput_SaysWhatItWrote()
    {
        using var dir = new TempDirectory();
        string source = dir.File("tiny.gguf");
        SyntheticModel.Write(source, SyntheticModel.Tiny, TensorDType.F16, seed: 9);
        var (code, output, err) = Run("prune", "--model", source, "--out", dir.File("p"), "--pattern", "2:4");
        Assert.True(code == 0, err);
        Assert.Contains("2:4, magnitude", output);
        Assert.Contains("14 tensors pruned to 50.0% zeros", output);
        using var checkpoint = ModelLoader.Load(dir.File("p"));
        var up = checkpoint.GetTensor("blk.0.ffn_up.weight");
        Assert.True(up.IsSparse);
        Assert.Equal(TensorDType.F16, up.Sparse!.ValuesDType);  // values keep the source dtype
    }

    [Theory]
    [InlineData("--pattern", "2:4", "--sparsity", "0.7")]
    [InlineData("--pattern", "unstructured")]
    [InlineData("--pattern", "unstructured", "--sparsity", "1.5")]
    [InlineData("--pattern", "unstructured", "--sparsity", "abc")]
    [InlineData("--pattern", "2:4", "--method", "wanda")]
    public void BadArguments_ExitWithBadInput(params string[] extra)
    {
        using var dir = new TempDirectory();
        string source = dir.File("tiny.gguf");
        SyntheticModel.Write(source, SyntheticModel.Tiny, TensorDType.F32, seed: 1);
        var (code, _, err) = Run(["prune", "--model", source, "--out", dir.File("p"), .. extra]);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("sharpinfer: invalid argument", err);
        Assert.False(Directory.Exists(dir.File("p")));
    }

    [Fact]
    public void PruningASparseModel_IsRefused()
    {
        using var dir = new TempDirectory();
        string pruned = SparseCheckpointTests.PruneTiny(dir, SharpInfer.Sparsity.SparsityPattern.TwoFour, 0.5);
        var (code, _, err) = Run("prune", "--model", pruned, "--out", dir.File("again"), "--pattern", "2:4");
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("already sparse", err);
    }
}
