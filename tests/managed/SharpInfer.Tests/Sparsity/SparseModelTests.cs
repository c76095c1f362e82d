// SparseModelTests.cs: pruned models through the model runner and si_sparse_matmul: stories260K pruned
// 2:4 and 70% unstructured generates the same tokens on ref and cpu, the sparse kernels give the
// logits the dense copies give, and the runner's sparse-vs-dense choice is made and reported
// (by bytes for small matrices, by timing for larger ones, consistent with the timings).
using SharpInfer.Backends;
using SharpInfer.Engine;
using SharpInfer.Interop;
using SharpInfer.Llama;
using SharpInfer.Models;
using SharpInfer.Sparsity;
using SharpInfer.Tests.Models;

namespace SharpInfer.Tests.Sparsity;

public sealed class SparseModelTests
{
    public static TheoryData<SparsityPattern, double, PruneMethod> Variants() => new()
    {
        { SparsityPattern.TwoFour, 0.5, PruneMethod.Magnitude },
        { SparsityPattern.Unstructured, 0.7, PruneMethod.Wanda },
    };

    private static string PruneStories(TempDirectory dir, SparsityPattern pattern, double sparsity, PruneMethod method)
    {
        string models = TestModels.RequireStories260K();
        string calib = Path.Combine(TestModels.RepoRoot!, "perf", "data", "stories260K-calib.txt");
        string text = File.Exists(calib) ? File.ReadAllText(calib) : "Once upon a time, there was a little girl named Lily. She liked to play.";
        string outDir = dir.File($"stories-{pattern}-{sparsity}-{method}");
        ModelPruner.Run(Path.Combine(models, "hf"), outDir, new PruneOptions
        {
            Pattern = pattern, Sparsity = sparsity, Method = method, CalibrationText = text, CalibrationTokens = 512, Threads = 2,
        });
        return outDir;
    }

    [SkippableTheory]
    [MemberData(nameof(Variants))]
    public void PrunedStories260K_GeneratesTheSameTokensOnRefAndCpu_ThroughTheSparseKernels(SparsityPattern pattern, double sparsity, PruneMethod method)
    {
        using var dir = new TempDirectory();
        string pruned = PruneStories(dir, pattern, sparsity, method);
        using var checkpoint = ModelLoader.Load(pruned);

        int[] Generate(BackendKind kind)
        {
            using var backend = ComputeBackend.Open(kind, threads: 2);
            using var model = new LlamaModel(checkpoint, backend);
            // stories260K's matrices are too small to time: the runner keeps them sparse (fewer bytes).
            Assert.Equal(35, model.SparseKernelChoices.Sum(c => c.Weights.Count));
            Assert.All(model.SparseKernelChoices, c => Assert.True(c.AlwaysSparse, c.Describe()));
            var result = new TextGenerator(model, checkpoint.Tokenizer).Generate("Once upon a time", SamplingParams.Greedy with { MaxTokens = 24 });
            Assert.Equal(24, result.GeneratedTokens.Count);
            return [.. result.GeneratedTokens];
        }

        Assert.Equal(Generate(BackendKind.Ref), Generate(BackendKind.Cpu));
    }

    [SkippableTheory]
    [MemberData(nameof(Variants))]
    public void SparseKernels_GiveTheLogitsOfTheDenseCopies(SparsityPattern pattern, double sparsity, PruneMethod method)
    {
        using var dir = new TempDirectory();
        string pruned = PruneStories(dir, pattern, sparsity, method);
        using var checkpoint = ModelLoader.Load(pruned);
        using var backend = ComputeBackend.Open(BackendKind.Cpu, threads: 2);
        int[] prompt = checkpoint.Tokenizer.Encode("Once upon a time, there was a big dog.", addBos: true);

        float[] Logits(SparseKernelPolicy policy)
        {
            using var model = new LlamaModel(checkpoint, backend, sparseKernels: policy);
            Assert.All(model.SparseKernelChoices, c => Assert.Equal(policy == SparseKernelPolicy.Sparse, c.AlwaysSparse));
            using var cache = model.CreateCache(64);
            var logits = new float[prompt.Length * model.VocabSize];
            model.Forward(prompt, cache, logits, allPositions: true);
            return logits;
        }

        float[] sparse = Logits(SparseKernelPolicy.Sparse), dense = Logits(SparseKernelPolicy.Dense);
        float scale = dense.Max(MathF.Abs);
        for (int i = 0; i < dense.Length; i++)
            Assert.True(MathF.Abs(sparse[i] - dense[i]) <= 1e-4f * scale, $"logit {i}: sparse {sparse[i]} vs dense {dense[i]}");
    }

    [SkippableFact]
    public void PrunedStories260K_DecisionsAreReportedInVerboseOutput()
    {
        using var dir = new TempDirectory();
        string pruned = PruneStories(dir, SparsityPattern.Unstructured, 0.5, PruneMethod.Magnitude);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = SharpInfer.Cli.CliApp.Run(["generate", "--model", pruned, "--max-tokens", "4", "--threads", "2", "--verbose"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        string log = stderr.ToString();
        Assert.Contains("sparse kernels (35 sparse weights", log);
        Assert.Contains("blk.*.ffn_down (64x172, bitmask 50%", log);
        Assert.Contains("too small to time", log);
        // Without --verbose the decisions are not printed.
        stderr = new StringWriter();
        code = SharpInfer.Cli.CliApp.Run(["generate", "--model", pruned, "--max-tokens", "4", "--threads", "2"], new StringWriter(), stderr);
        Assert.Equal(0, code);
        Assert.DoesNotContain("sparse kernels", stderr.ToString());
    }

    private static List<SparseKernelTiming> Timings(params (double Sparse, double Dense)[] t) =>
        t.Select((x, i) => new SparseKernelTiming(SparseKernelPlanner.TimedRows[i], x.Sparse, x.Dense)).ToList();

    [Fact]
    public void Threshold_KeepsSparseWhereItWins_AndIgnoresOneNoisyTie()
    {
        // Wins small, loses large: sparse up to 16 rows.
        Assert.Equal(16, SparseKernelPlanner.ChooseThreshold(Timings((10, 20), (30, 40), (90, 100), (500, 300))));
        // Wins only at one row.
        Assert.Equal(1, SparseKernelPlanner.ChooseThreshold(Timings((10, 20), (50, 40), (120, 100), (500, 300))));
        // Loses everywhere: dense.
        Assert.Equal(0, SparseKernelPlanner.ChooseThreshold(Timings((30, 20), (50, 40), (120, 100), (500, 300))));
        // Wins everywhere but a 0.4% loss at m=1 (noise): always sparse, no dense copy.
        Assert.Equal(int.MaxValue, SparseKernelPlanner.ChooseThreshold(Timings((974, 970), (1294, 1997), (3365, 3574), (12045, 12763))));
        // Wins at 1 and 4 by 2%, loses at 16 and 64 by half: the dense copy earns its memory above 4 rows.
        Assert.Equal(4, SparseKernelPlanner.ChooseThreshold(Timings((98, 100), (196, 200), (600, 400), (2400, 1600))));
    }

    [Fact]
    public void Planner_TimesLargerMatrices_AndItsChoiceFollowsTheTimings()
    {
        // Two weights of a shape large enough to time (1024 x 512), one of a small shape.
        var large = SparsePackingTests.RandomWeights(1024, 512, seed: 1);
        Pruner.Prune(large, 1024, 512, SparsityPattern.Unstructured, 0.7);
        var small = SparsePackingTests.RandomWeights(32, 64, seed: 2);
        Pruner.Prune(small, 32, 64, SparsityPattern.TwoFour, 0.5);
        using var a = SparseWeight.Pack("blk.0.ffn_up.weight", large, 1024, 512, SparseFormat.Bitmask);
        using var b = SparseWeight.Pack("blk.1.ffn_up.weight", large, 1024, 512, SparseFormat.Bitmask);
        using var c = SparseWeight.Pack("blk.0.attn_k.weight", small, 32, 64, SparseFormat.TwoFour);
        using var context = new NativeContext(SiBackend.Cpu, 2);

        var choices = SparseKernelPlanner.Choose(context, [("blk.0.ffn_up.weight", a), ("blk.1.ffn_up.weight", b), ("blk.0.attn_k.weight", c)], SparseKernelPolicy.Auto);

        Assert.Equal(2, choices.Count);
        var timed = choices.Single(x => x.Out == 1024);
        Assert.Equal("blk.*.ffn_up", timed.Group);
        Assert.Equal(["blk.0.ffn_up.weight", "blk.1.ffn_up.weight"], timed.Weights);
        Assert.Equal("timed", timed.Basis);
        Assert.Equal(SparseKernelPlanner.TimedRows, timed.Timings.Select(t => t.Rows));
        Assert.All(timed.Timings, t => Assert.True(t.SparseMicroseconds > 0 && t.DenseMicroseconds > 0));
        Assert.Equal(SparseKernelPlanner.ChooseThreshold(timed.Timings), timed.SparseMaxRows);
        string line = timed.Describe();
        Assert.StartsWith("blk.*.ffn_up (1024x512, bitmask 70%", line);
        Assert.Contains("x at m=1", line);

        var byBytes = choices.Single(x => x.Out == 32);
        Assert.Empty(byBytes.Timings);
        Assert.True(byBytes.AlwaysSparse);
        Assert.Contains("too small to time", byBytes.Describe());
    }
}
