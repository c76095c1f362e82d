// SyntheticModelTests.cs: random-weight GGUF files round-trip through the loader with exactly the
// values the generator produces, in each dtype, with either vocabulary source.
using SharpInfer.Models;
using SharpInfer.Tests.Tokenization;

namespace SharpInfer.Tests.Models;

public sealed class SyntheticModelTests
{
    [Theory]
    [InlineData(TensorDType.F32)]
    [InlineData(TensorDType.F16)]
    [InlineData(TensorDType.BF16)]
    public void TinyModel_RoundTripsWrittenValues(TensorDType dtype)
    {
        using var dir = new TempDirectory();
        string path = dir.File("tiny.gguf");
        var config = SyntheticModel.Tiny;
        SyntheticModel.Write(path, config, dtype, seed: 42);

        using var m = ModelLoader.Load(path);
        Assert.Equal(config with { EosTokenIds = [2] }, m.Config);
        Assert.Equal(1 + 9 * config.NumLayers + 2, m.TensorNames.Count); // embd, 9 per layer, norm, output
        foreach (string name in m.TensorNames)
        {
            var t = m.GetTensor(name);
            float[] expected = SyntheticModel.GenerateValues(name, t.ElementCount, seed: 42);
            if (t.Shape.Length == 1)
            {
                Assert.Equal(TensorDType.F32, t.DType); // norms stay F32
                if (name.EndsWith("norm.weight")) Assert.All(expected, v => Assert.Equal(1f, v));
            }
            else
            {
                Assert.Equal(dtype, t.DType);
                expected = dtype switch
                {
                    TensorDType.F16 => expected.Select(v => (float)(Half)v).ToArray(),
                    TensorDType.BF16 => expected.Select(v => TensorDTypeExtensions.BFloat16ToSingle(TensorDTypeExtensions.SingleToBFloat16(v))).ToArray(),
                    _ => expected,
                };
            }
            Assert.Equal(expected, t.ToFloat32());
        }
    }

    [Fact]
    public void Weights_LookLikeNormal002()
    {
        float[] v = SyntheticModel.GenerateValues("blk.0.ffn_up.weight", 200_000, seed: 7);
        double mean = v.Average();
        double std = Math.Sqrt(v.Select(x => (x - mean) * (x - mean)).Average());
        Assert.InRange(mean, -0.001, 0.001);
        Assert.InRange(std, 0.0195, 0.0205);
        Assert.NotEqual(v, SyntheticModel.GenerateValues("blk.0.ffn_up.weight", 200_000, seed: 8));
        Assert.NotEqual(v, SyntheticModel.GenerateValues("blk.0.ffn_down.weight", 200_000, seed: 7));
    }

    [Fact]
    public void MultiChunkTensor_StreamsTheSameValues()
    {
        using var dir = new TempDirectory();
        string path = dir.File("chunks.gguf");
        // token_embd is 3000 x 1024 = 3M elements: several generator chunks and writer windows.
        var config = SyntheticModel.Tiny with { VocabSize = 3000, HiddenSize = 1024, NumHeads = 16, NumKvHeads = 4, HeadDim = 64, NumLayers = 1, IntermediateSize = 64 };
        SyntheticModel.Write(path, config, TensorDType.F16, seed: 3);
        using var m = ModelLoader.Load(path);
        var t = m.GetTensor("token_embd.weight");
        Assert.True(t.ElementCount > 2 * SyntheticModel.ChunkElements);
        float[] expected = SyntheticModel.GenerateValues("token_embd.weight", t.ElementCount, seed: 3).Select(v => (float)(Half)v).ToArray();
        Assert.Equal(expected, t.ToFloat32());
    }

    [Fact]
    public void TiedBiasedQwen2_RoundTrips()
    {
        using var dir = new TempDirectory();
        string path = dir.File("qwen.gguf");
        var config = SyntheticModel.Tiny with { Architecture = "qwen2", TieWordEmbeddings = true, AttentionBias = true, RopeTheta = 1e6f, RopeScale = 0.5f };
        SyntheticModel.Write(path, config, TensorDType.F32, seed: 5);
        using var m = ModelLoader.Load(path);
        Assert.Equal("qwen2", m.Config.Architecture);
        Assert.True(m.Config.TieWordEmbeddings);
        Assert.True(m.Config.AttentionBias);
        Assert.Equal(RopeLayout.RotateHalf, m.Config.RopeLayout);
        Assert.Equal(1e6f, m.Config.RopeTheta);
        Assert.Equal(0.5f, m.Config.RopeScale);
        Assert.False(m.TryGetTensor("output.weight", out _));
        Assert.Equal([64L], m.GetTensor("blk.1.attn_q.bias").Shape);
        Assert.Equal([32L], m.GetTensor("blk.1.attn_k.bias").Shape);
    }

    [Fact]
    public void HeadDimOtherThanHiddenOverHeads_RoundTrips()
    {
        using var dir = new TempDirectory();
        string path = dir.File("hd.gguf");
        var config = SyntheticModel.Tiny with { HeadDim = 32 }; // 4 heads x 32 = 128 != hidden 64
        SyntheticModel.Write(path, config, TensorDType.F32, seed: 1);
        using var m = ModelLoader.Load(path);
        Assert.Equal(32, m.Config.HeadDim);
        Assert.Equal([128L, 64L], m.GetTensor("blk.0.attn_q.weight").Shape);
        Assert.Equal([64L, 128L], m.GetTensor("blk.0.attn_output.weight").Shape);
    }

    [SkippableFact]
    public void Stories260KTokenizer_IsCarriedOver_AndPaddedToVocab()
    {
        TestModels.RequireStories260K();
        var tokenizer = TokenizerCaseTests.LoadTokenizer("hf");
        using var dir = new TempDirectory();
        string path = dir.File("stories-vocab.gguf");
        SyntheticModel.Write(path, SyntheticModel.Tiny with { VocabSize = 600 }, TensorDType.F16, seed: 9, tokenizer);
        using var m = ModelLoader.Load(path);
        Assert.Equal(600, m.Config.VocabSize);
        Assert.Equal(600, m.Tokenizer.VocabSize);
        foreach (var c in TokenizerCaseTests.LoadCases())
        {
            Assert.Equal(c.IdsWithBos, m.Tokenizer.Encode(c.Text));
            Assert.Equal(c.Text, m.Tokenizer.Decode(c.IdsWithBos));
        }
    }

    [Fact]
    public void InvalidConfig_IsRejectedBeforeWriting()
    {
        using var dir = new TempDirectory();
        string path = dir.File("bad.gguf");
        Assert.Throws<ModelFormatException>(() => SyntheticModel.Write(path, SyntheticModel.Tiny with { NumKvHeads = 3 }, TensorDType.F32, 1));
        Assert.False(File.Exists(path));
    }
}
