// SparseCheckpointTests.cs: `sharpinfer prune`'s checkpoint as the loader sees it: a pruned model
// loads with every block linear sparse and unpacks to exactly the pruned weights; tampered packed
// tensors (metadata that disagrees with the shape, row offsets that disagree with the mask, invalid
// 2:4 codes) and a dense checkpoint whose config claims a 2:4 that does not hold are errors naming
// the tensor; a dense checkpoint whose claim holds is packed at load.
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using SharpInfer.Models;
using SharpInfer.Models.SafeTensors;
using SharpInfer.Quantization;
using SharpInfer.Sparsity;
using SharpInfer.Tests.Models;

namespace SharpInfer.Tests.Sparsity;

public sealed class SparseCheckpointTests
{
    /// <summary>A tiny random GGUF pruned into <paramref name="outDir"/>.</summary>
    internal static string PruneTiny(TempDirectory dir, SparsityPattern pattern, double sparsity, string name = "pruned")
    {
        string source = dir.File("tiny.gguf");
        if (!File.Exists(source)) SyntheticModel.Write(source, SyntheticModel.Tiny, TensorDType.F32, seed: 3);
        string outDir = dir.File(name);
        ModelPruner.Run(source, outDir, new PruneOptions { Pattern = pattern, Sparsity = sparsity });
        return outDir;
    }

    /// <summary>Rewrites model.safetensors, letting <paramref name="edit"/> replace entries.</summary>
    internal static void Rewrite(string folder, Func<SafeTensorsEntry, SafeTensorsEntry> edit)
    {
        string path = Path.Combine(folder, "model.safetensors");
        var entries = new List<SafeTensorsEntry>();
        using (var file = SafeTensorsFile.Open(path))
            foreach (var t in file.Tensors)
                entries.Add(edit(new SafeTensorsEntry(t.Name, t.DType, t.Shape, file.File.Span(t.FileOffset, (int)t.ByteLength).ToArray())));
        SafeTensorsWriter.Write(path, entries);
    }

    [Theory]
    [InlineData(SparsityPattern.TwoFour, 0.5)]
    [InlineData(SparsityPattern.Unstructured, 0.7)]
    public void PrunedModel_LoadsSparse_AndUnpacksToThePrunedWeights(SparsityPattern pattern, double sparsity)
    {
        using var dir = new TempDirectory();
        string pruned = PruneTiny(dir, pattern, sparsity);
        using var source = ModelLoader.Load(dir.File("tiny.gguf"));
        using var checkpoint = ModelLoader.Load(pruned);
        var c = checkpoint.Config;
        int sparse = 0;
        foreach (string name in checkpoint.TensorNames)
        {
            var t = checkpoint.GetTensor(name);
            bool linear = ModelQuantizer.LinearNames.Any(n => name.EndsWith($".{n}.weight", StringComparison.Ordinal));
            Assert.Equal(linear, t.IsSparse);
            if (!linear) continue;
            sparse++;
            Assert.Equal(pattern.Format(), t.Sparse!.Format);
            float[] values = t.ToFloat32();
            int rows = (int)t.Shape[0], columns = (int)t.Shape[1];
            // Re-prune the source (q/k rows in the HF order the checkpoint uses) and compare exactly.
            float[] expected = source.GetTensor(name).ToFloat32();
            if (name.Contains(".attn_q.")) ModelQuantizer.PermuteToRotateHalf(expected, c.NumHeads, c.HeadDim, columns);
            if (name.Contains(".attn_k.")) ModelQuantizer.PermuteToRotateHalf(expected, c.NumKvHeads, c.HeadDim, columns);
            Pruner.Prune(expected, rows, columns, pattern, sparsity);
            Assert.Equal(expected, values);
        }
        Assert.Equal(7 * c.NumLayers, sparse);
        Assert.False(checkpoint.GetTensor(LlamaTensorNames.TokenEmbedding).IsSparse);
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(pruned, "config.json")));
        var section = config.RootElement.GetProperty("sparsity_config");
        Assert.Equal(pattern.Name(), section.GetProperty("pattern").GetString());
        Assert.Equal(7 * c.NumLayers, section.GetProperty("modules").EnumerateObject().Count());
    }

    [Fact]
    public void TwoFourMetadata_ThatDisagreesWithTheShape_NamesTheTensor()
    {
        using var dir = new TempDirectory();
        string pruned = PruneTiny(dir, SparsityPattern.TwoFour, 0.5);
        const string target = "model.layers.1.mlp.up_proj.sparse_meta";
        Rewrite(pruned, e => e.Name == target ? e with { Shape = [e.Shape[0] / 2, e.Shape[1] * 2] } : e);
        var error = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(pruned));
        Assert.Contains($"'{target}'", error.Message);
        Assert.Contains("disagrees with the shape", error.Message);
    }

    [Fact]
    public void TwoFourMetadata_WithAnInvalidCode_NamesTheTensor()
    {
        using var dir = new TempDirectory();
        string pruned = PruneTiny(dir, SparsityPattern.TwoFour, 0.5);
        const string target = "model.layers.0.self_attn.o_proj.sparse_meta";
        Rewrite(pruned, e =>
        {
            if (e.Name != target) return e;
            var data = (byte[])e.Data.Clone();
            data[2] = (byte)((data[2] & 0xF0) | 3 | 1 << 2);  // row 0, group 4: positions 3 then 1
            return e with { Data = data };
        });
        var error = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(pruned));
        Assert.Contains($"'{target}'", error.Message);
        Assert.Contains("not valid 2:4 metadata", error.Message);
    }

    [Fact]
    public void RowOffsets_ThatDisagreeWithTheMaskPopcounts_NameTheTensor()
    {
        using var dir = new TempDirectory();
        string pruned = PruneTiny(dir, SparsityPattern.Unstructured, 0.5);
        const string target = "model.layers.1.self_attn.k_proj.sparse_row_offsets";
        Rewrite(pruned, e =>
        {
            if (e.Name != target) return e;
            var offsets = MemoryMarshal.Cast<byte, long>(e.Data).ToArray();
            offsets[3] -= 1;
            return e with { Data = MemoryMarshal.AsBytes(offsets.AsSpan()).ToArray() };
        });
        var error = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(pruned));
        Assert.Contains($"'{target}'", error.Message);
        Assert.Contains("row 2", error.Message);
    }

    [Fact]
    public void MaskOfTheWrongShape_NamesTheTensor()
    {
        using var dir = new TempDirectory();
        string pruned = PruneTiny(dir, SparsityPattern.Unstructured, 0.5);
        const string target = "model.layers.0.mlp.down_proj.sparse_mask";
        Rewrite(pruned, e => e.Name == target ? e with { Shape = [e.Shape[0] * e.Shape[1]] } : e);
        var error = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(pruned));
        Assert.Contains($"'{target}'", error.Message);
        Assert.Contains("disagrees with the shape", error.Message);
    }

    [Fact]
    public void SparseTensors_WithoutASparsityConfig_AreAnError()
    {
        using var dir = new TempDirectory();
        string pruned = PruneTiny(dir, SparsityPattern.TwoFour, 0.5);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(pruned, "config.json")))!.AsObject();
        config.Remove("sparsity_config");
        File.WriteAllText(Path.Combine(pruned, "config.json"), config.ToJsonString());
        var error = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(pruned));
        Assert.Contains("sparse_", error.Message);
        Assert.Contains("no sparsity_config", error.Message);
    }

    /// <summary>An HF folder with dense weights (the pruned model unpacked) whose config claims 2:4 for every linear.</summary>
    private static string DenseClaimingTwoFour(TempDirectory dir, Func<string, float[], float[]>? tamper = null)
    {
        string pruned = PruneTiny(dir, SparsityPattern.TwoFour, 0.5);
        string dense = dir.File("dense-claim");
        Directory.CreateDirectory(dense);
        foreach (string f in Directory.GetFiles(pruned)) File.Copy(f, Path.Combine(dense, Path.GetFileName(f)));
        using (var checkpoint = ModelLoader.Load(pruned))
        {
            var entries = new List<SafeTensorsEntry>();
            foreach (string name in checkpoint.TensorNames)
            {
                var t = checkpoint.GetTensor(name);
                float[] values = t.ToFloat32();
                if (tamper is not null) values = tamper(LlamaTensorNames.ToHuggingFace(name), values);
                entries.Add(new SafeTensorsEntry(LlamaTensorNames.ToHuggingFace(name), "F32", t.Shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray()));
            }
            SafeTensorsWriter.Write(Path.Combine(dense, "model.safetensors"), entries);
        }
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dense, "config.json")))!.AsObject();
        config["sparsity_config"] = new JsonObject { ["format_version"] = 1, ["pattern"] = "2:4" };
        File.WriteAllText(Path.Combine(dense, "config.json"), config.ToJsonString());
        return dense;
    }

    [Fact]
    public void DenseCheckpoint_ClaimingTwoFour_IsPackedAtLoad()
    {
        using var dir = new TempDirectory();
        string dense = DenseClaimingTwoFour(dir);
        using var packed = ModelLoader.Load(dir.File("pruned"));
        using var loaded = ModelLoader.Load(dense);
        foreach (string name in packed.TensorNames)
        {
            var t = loaded.GetTensor(name);
            Assert.Equal(packed.GetTensor(name).IsSparse, t.IsSparse);
            if (!t.IsSparse) continue;
            Assert.Equal(SparseFormat.TwoFour, t.Sparse!.Format);
            Assert.NotEqual(0, t.Sparse.DenseSource);  // the mapped dense tensor is the dense fallback
            Assert.Equal(packed.GetTensor(name).ToFloat32(), t.ToFloat32());
        }
    }

    [Fact]
    public void DenseCheckpoint_ClaimingTwoFour_ThatIsNot_NamesTheTensor()
    {
        using var dir = new TempDirectory();
        const string target = "model.layers.1.mlp.gate_proj.weight";
        string dense = DenseClaimingTwoFour(dir, (name, values) =>
        {
            if (name != target) return values;
            values[64 * 3 + 8] = values[64 * 3 + 9] = values[64 * 3 + 10] = 0.5f;  // row 3, columns 8..10
            return values;
        });
        var error = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(dense));
        Assert.Contains($"'{target}'", error.Message);
        Assert.Contains("declared 2:4 but is not", error.Message);
        Assert.Contains("row 3, columns 8..11", error.Message);
    }
}
