// Stories260KLoadTests.cs: the three stories260K forms (our GGUF, llama.cpp's GGUF, the HF folder)
// load with the README's config, share byte-identical tensors, and differ in q/k exactly by the
// HF rotate_half permutation.
using System.Runtime.InteropServices;
using SharpInfer.Models;

namespace SharpInfer.Tests.Models;

public sealed class Stories260KLoadTests
{
    private static void AssertReadmeConfig(LlamaConfig c, int expectedContext)
    {
        Assert.Equal("llama", c.Architecture);
        Assert.Equal(512, c.VocabSize);
        Assert.Equal(64, c.HiddenSize);
        Assert.Equal(172, c.IntermediateSize);
        Assert.Equal(5, c.NumLayers);
        Assert.Equal(8, c.NumHeads);
        Assert.Equal(4, c.NumKvHeads);
        Assert.Equal(8, c.HeadDim);
        Assert.Equal(expectedContext, c.MaxContext);
        Assert.Equal(10000f, c.RopeTheta);
        Assert.Equal(1f, c.RopeScale);
        Assert.Equal(1e-5f, c.RmsNormEps);
        Assert.False(c.AttentionBias);
        Assert.Equal(1, c.BosTokenId);
        Assert.Equal([2], c.EosTokenIds);
    }

    private static void AssertTokenizerBasics(ModelCheckpoint m)
    {
        Assert.Equal(512, m.Tokenizer.VocabSize);
        Assert.Equal(1, m.Tokenizer.BosId);
        Assert.Equal(2, m.Tokenizer.EosId);
        Assert.Equal(0, m.Tokenizer.UnkId);
        Assert.Equal([2], m.Tokenizer.EosIds);
    }

    [SkippableFact]
    public void OurGguf_LoadsWithReadmeConfig()
    {
        TestModels.RequireStories260K();
        using var m = ModelLoader.Load(TestModels.Stories260KGguf);
        Assert.Equal("gguf", m.Format);
        AssertReadmeConfig(m.Config, expectedContext: 512);
        Assert.Equal(RopeLayout.AdjacentPairs, m.Config.RopeLayout);
        Assert.False(m.Config.TieWordEmbeddings); // output.weight is present (a copy of the embedding)
        Assert.Equal(48, m.TensorNames.Count);
        Assert.All(m.TensorNames, n => Assert.Equal(TensorDType.F32, m.GetTensor(n).DType));
        Assert.Equal([32L, 64L], m.GetTensor("blk.0.attn_k.weight").Shape);
        Assert.Equal([172L, 64L], m.GetTensor("blk.4.ffn_up.weight").Shape);
        Assert.Equal([64L, 172L], m.GetTensor("blk.4.ffn_down.weight").Shape);
        Assert.Null(m.ChatTemplate);
        AssertTokenizerBasics(m);
    }

    [SkippableFact]
    public void OurGguf_LoadsThroughASymbolicLink()
    {
        TestModels.RequireStories260K();
        string dir = Directory.CreateTempSubdirectory("si-link").FullName;
        try
        {
            string link = Path.Combine(dir, "model.gguf");
            File.CreateSymbolicLink(link, Path.GetFullPath(TestModels.Stories260KGguf));
            using var m = ModelLoader.Load(link);
            AssertReadmeConfig(m.Config, expectedContext: 512);
            Assert.Equal(48, m.TensorNames.Count);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [SkippableFact]
    public void UpstreamGguf_LoadsWithReadmeConfigAndContext2048()
    {
        TestModels.RequireStories260K();
        using var m = ModelLoader.Load(TestModels.Stories260KUpstreamGguf);
        AssertReadmeConfig(m.Config, expectedContext: 2048);
        Assert.Equal(RopeLayout.AdjacentPairs, m.Config.RopeLayout);
        AssertTokenizerBasics(m);
    }

    [SkippableFact]
    public void HfFolder_LoadsWithReadmeConfig()
    {
        TestModels.RequireStories260K();
        using var m = ModelLoader.Load(TestModels.Stories260KHf);
        Assert.Equal("hf", m.Format);
        AssertReadmeConfig(m.Config, expectedContext: 512);
        Assert.Equal(RopeLayout.RotateHalf, m.Config.RopeLayout);
        Assert.True(m.Config.TieWordEmbeddings);
        Assert.True(m.TryGetTensor("output.weight", out _)); // lm_head.weight ships anyway
        Assert.Equal(48, m.TensorNames.Count);
        AssertTokenizerBasics(m);
        Assert.True(m.Tokenizer.AddBosToken);
        Assert.False(m.Tokenizer.AddEosToken);
    }

    [SkippableFact]
    public void ConfigJsonPath_LoadsTheFolder()
    {
        TestModels.RequireStories260K();
        using var m = ModelLoader.Load(Path.Combine(TestModels.Stories260KHf, "config.json"));
        Assert.Equal("hf", m.Format);
    }

    private static IEnumerable<string> UnpermutedTensorNames()
    {
        yield return "token_embd.weight";
        yield return "output_norm.weight";
        yield return "output.weight";
        for (int i = 0; i < 5; i++)
            foreach (string t in (string[])["attn_norm", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"])
                yield return $"blk.{i}.{t}.weight";
    }

    [SkippableFact]
    public void GgufAndHf_NonRopeTensorsAreByteIdentical()
    {
        TestModels.RequireStories260K();
        using var gguf = ModelLoader.Load(TestModels.Stories260KGguf);
        using var upstream = ModelLoader.Load(TestModels.Stories260KUpstreamGguf);
        using var hf = ModelLoader.Load(TestModels.Stories260KHf);
        foreach (string name in UnpermutedTensorNames())
        {
            var a = gguf.GetTensor(name);
            var b = hf.GetTensor(name);
            Assert.Equal(a.Shape, b.Shape);
            Assert.True(a.Bytes.SequenceEqual(b.Bytes), $"{name} differs between GGUF and HF");
        }
        foreach (string name in gguf.TensorNames)
            Assert.True(gguf.GetTensor(name).Bytes.SequenceEqual(upstream.GetTensor(name).Bytes), $"{name} differs from upstream");
    }

    [SkippableFact]
    public void HfQK_AreTheReadmePermutationOfGgufQK()
    {
        TestModels.RequireStories260K();
        using var gguf = ModelLoader.Load(TestModels.Stories260KGguf);
        using var hf = ModelLoader.Load(TestModels.Stories260KHf);
        int hd = gguf.Config.HeadDim, dim = gguf.Config.HiddenSize;
        for (int layer = 0; layer < gguf.Config.NumLayers; layer++)
        {
            foreach (var (suffix, heads) in new[] { ("attn_q", gguf.Config.NumHeads), ("attn_k", gguf.Config.NumKvHeads) })
            {
                string name = $"blk.{layer}.{suffix}.weight";
                float[] original = gguf.GetTensor(name).ToFloat32();
                float[] permuted = hf.GetTensor(name).ToFloat32();
                Assert.Equal(heads * hd * dim, original.Length);
                Assert.False(original.AsSpan().SequenceEqual(permuted), $"{name}: HF and GGUF should differ in row order");
                // new row h*hd + j*hd/2 + i == old row h*hd + 2i + j
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < hd / 2; i++)
                        for (int j = 0; j < 2; j++)
                        {
                            var newRow = permuted.AsSpan((h * hd + j * hd / 2 + i) * dim, dim);
                            var oldRow = original.AsSpan((h * hd + 2 * i + j) * dim, dim);
                            Assert.True(newRow.SequenceEqual(oldRow), $"{name}: head {h} pair {i} half {j}");
                        }
            }
        }
    }

    [SkippableFact]
    public unsafe void TensorData_PointsIntoTheMappedFile()
    {
        TestModels.RequireStories260K();
        using var m = ModelLoader.Load(TestModels.Stories260KGguf);
        var t = m.GetTensor("output_norm.weight");
        Assert.Equal(64 * 4, t.ByteLength);
        var viaPointer = new ReadOnlySpan<float>((void*)t.Data, 64);
        Assert.True(viaPointer.SequenceEqual(MemoryMarshal.Cast<byte, float>(t.Bytes)));
        Assert.Equal(viaPointer.ToArray(), t.ToFloat32());

        // The file bytes at FileOffset are the same bytes.
        using var f = File.OpenRead(t.SourceFile);
        f.Position = t.FileOffset;
        var buffer = new byte[t.ByteLength];
        f.ReadExactly(buffer);
        Assert.True(buffer.AsSpan().SequenceEqual(t.Bytes));
    }

    [SkippableFact]
    public void Dispose_InvalidatesTensorAccess()
    {
        TestModels.RequireStories260K();
        var m = ModelLoader.Load(TestModels.Stories260KGguf);
        var t = m.GetTensor("output_norm.weight");
        m.Dispose();
        m.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => t.ToFloat32());
        Assert.Throws<ObjectDisposedException>(() => m.GetTensor("output_norm.weight"));
    }

    [SkippableFact]
    public void MissingTensorName_IsAClearError()
    {
        TestModels.RequireStories260K();
        using var m = ModelLoader.Load(TestModels.Stories260KGguf);
        var e = Assert.Throws<ModelFormatException>(() => m.GetTensor("blk.9.attn_q.weight"));
        Assert.Contains("no tensor named 'blk.9.attn_q.weight'", e.Message);
        Assert.False(m.TryGetTensor("blk.9.attn_q.weight", out _));
    }
}
