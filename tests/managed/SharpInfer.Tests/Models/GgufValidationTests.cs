// GgufValidationTests.cs: the GGUF reader and loader turn every kind of damaged or unsupported
// file into a ModelFormatException whose message says what is wrong, and round-trip what the
// writer produces.
using SharpInfer.Models;
using SharpInfer.Models.Gguf;

namespace SharpInfer.Tests.Models;

public sealed class GgufValidationTests
{
    private static ModelFormatException LoadFails(string path, string expectedPhrase)
    {
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(path).Dispose());
        Assert.Contains(expectedPhrase, e.Message);
        Assert.Contains(Path.GetFileName(path), e.Message);
        return e;
    }

    [Fact]
    public void SmallModel_Loads()
    {
        using var dir = new TempDirectory();
        string path = dir.File("ok.gguf");
        TestFiles.WriteLlamaGguf(path);
        using var m = ModelLoader.Load(path);
        Assert.Equal(TestFiles.SmallConfig with { EosTokenIds = [2] }, m.Config);
        Assert.Equal(TestFiles.LlamaTensors(TestFiles.SmallConfig).Count, m.TensorNames.Count);
    }

    [Fact]
    public void TruncatedAnywhere_IsAModelFormatException()
    {
        using var dir = new TempDirectory();
        string good = dir.File("good.gguf");
        var layout = TestFiles.WriteLlamaGguf(good);
        byte[] bytes = File.ReadAllBytes(good);

        var cuts = new List<(long At, string Phrase)>
        {
            (0, "truncated"), (3, "truncated"), (10, "truncated"), (20, "truncated"),       // header
            (layout.MetadataOffset + 5, "truncated"),                                          // first key
            ((layout.MetadataOffset + layout.TensorInfosOffset) / 2, "truncated"),             // mid metadata
            (layout.TensorInfosOffset - 1, "truncated"),                                       // last metadata byte
            (layout.TensorInfosOffset + 3, "truncated"),                                       // tensor infos
            ((layout.TensorInfosOffset + layout.DataOffset) / 2, "truncated"),
            (layout.DataOffset + 7, "past the end of the file"),                               // data
            ((layout.DataOffset + layout.FileLength) / 2, "past the end of the file"),
            (layout.FileLength - 1, "past the end of the file"),
        };
        // Plus a sweep of cut points across the whole file: all must fail cleanly.
        for (long at = 0; at < bytes.Length; at += Math.Max(1, bytes.Length / 97)) cuts.Add((at, ""));

        string cut = dir.File("cut.gguf");
        foreach (var (at, phrase) in cuts)
        {
            File.WriteAllBytes(cut, bytes.AsSpan(0, (int)at).ToArray());
            var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(cut).Dispose());
            Assert.True(e.Message.Contains(phrase), $"cut at {at}: {e.Message}");
        }
    }

    [Fact]
    public void BadMagic()
    {
        using var dir = new TempDirectory();
        string path = dir.File("m.gguf");
        TestFiles.WriteLlamaGguf(path);
        TestFiles.PatchU32(path, 0, 0x4C4C4747); // "GGLL"
        LoadFails(path, "bad magic \"GGLL\": not a GGUF file");
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(4u)]
    [InlineData(0x03000000u)]
    public void UnsupportedVersion(uint version)
    {
        using var dir = new TempDirectory();
        string path = dir.File("v.gguf");
        TestFiles.WriteLlamaGguf(path);
        TestFiles.PatchU32(path, 4, version);
        var e = LoadFails(path, $"unsupported GGUF version {version} (supported: 2, 3)");
        if (version == 0x03000000u) Assert.Contains("big-endian", e.Message);
    }

    [Fact]
    public void Version2_IsAccepted()
    {
        using var dir = new TempDirectory();
        string path = dir.File("v2.gguf");
        TestFiles.WriteLlamaGguf(path);
        TestFiles.PatchU32(path, 4, 2);
        using var m = ModelLoader.Load(path);
        Assert.Equal(2, m.Config.NumLayers);
    }

    [Fact]
    public void ImpossibleCounts_AreRejectedBeforeAllocating()
    {
        using var dir = new TempDirectory();
        string path = dir.File("c.gguf");
        TestFiles.WriteLlamaGguf(path);
        TestFiles.PatchU64(path, 16, ulong.MaxValue / 2); // metadata count
        LoadFails(path, "metadata count");

        TestFiles.WriteLlamaGguf(path);
        TestFiles.PatchU64(path, 8, 1UL << 40); // tensor count
        LoadFails(path, "tensor count");
    }

    [Fact]
    public void AbsurdStringLength_IsTruncation()
    {
        using var dir = new TempDirectory();
        string path = dir.File("s.gguf");
        var layout = TestFiles.WriteLlamaGguf(path);
        TestFiles.PatchU64(path, layout.MetadataOffset, 1UL << 62); // length of the first key
        LoadFails(path, "claims 4611686018427387904 bytes");
    }

    [Fact]
    public void AbsurdArrayLength_IsRejected()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.gguf");
        // Put a single array first so its length field sits at a known offset:
        // key len (8) + "x" (1) + type (4) + element type (4) -> count.
        var layout = GgufWriter.Write(path, [new("x", GgufValue.Array(new float[] { 1, 2, 3 }))], []);
        TestFiles.PatchU64(path, layout.MetadataOffset + 8 + 1 + 4 + 4, 1UL << 40);
        var e = Assert.Throws<ModelFormatException>(() => GgufFile.Open(path).Dispose());
        Assert.Contains("claims 1099511627776 array elements", e.Message);
    }

    [Fact]
    public void TensorOffsetOutsideTheFile()
    {
        using var dir = new TempDirectory();
        string path = dir.File("o.gguf");
        var layout = TestFiles.WriteLlamaGguf(path);
        TestFiles.PatchU64(path, layout.Tensors["blk.1.ffn_up.weight"].OffsetFieldOffset, 1UL << 40);
        LoadFails(path, "tensor 'blk.1.ffn_up.weight': data offset 1099511627776 is outside the file");
    }

    [Fact]
    public void TensorOffsetNotAligned()
    {
        using var dir = new TempDirectory();
        string path = dir.File("u.gguf");
        var layout = TestFiles.WriteLlamaGguf(path);
        var t = layout.Tensors["blk.0.attn_k.weight"];
        TestFiles.PatchU64(path, t.OffsetFieldOffset, (ulong)(t.DataFileOffset - layout.DataOffset + 4));
        LoadFails(path, "tensor 'blk.0.attn_k.weight': data offset");
        LoadFails(path, "is not aligned to 32 bytes");
    }

    [Fact]
    public void TensorTooLargeForTheFile()
    {
        using var dir = new TempDirectory();
        string path = dir.File("big.gguf");
        var layout = TestFiles.WriteLlamaGguf(path);
        // The last tensor's outer dim grows: its data now runs past the end of the file.
        TestFiles.PatchU64(path, layout.Tensors["output.weight"].DimsOffset + 8, 1_000_000);
        LoadFails(path, "tensor 'output.weight': data");
        LoadFails(path, "runs past the end of the file");
    }

    [Fact]
    public void TensorSizeOverflow()
    {
        using var dir = new TempDirectory();
        string path = dir.File("ovf.gguf");
        var layout = TestFiles.WriteLlamaGguf(path);
        TestFiles.PatchU64(path, layout.Tensors["token_embd.weight"].DimsOffset, 1UL << 40);
        TestFiles.PatchU64(path, layout.Tensors["token_embd.weight"].DimsOffset + 8, 1UL << 40);
        LoadFails(path, "overflows");
    }

    [Fact]
    public void BadDims()
    {
        using var dir = new TempDirectory();
        string path = dir.File("d.gguf");
        var layout = TestFiles.WriteLlamaGguf(path);
        var t = layout.Tensors["blk.0.attn_q.weight"];
        TestFiles.PatchU32(path, t.DimsOffset - 4, 5); // n_dims
        LoadFails(path, "has 5 dims (supported: 1 to 4)");

        layout = TestFiles.WriteLlamaGguf(path);
        TestFiles.PatchU64(path, layout.Tensors["blk.0.attn_q.weight"].DimsOffset, 0);
        LoadFails(path, "dims must be positive");

        layout = TestFiles.WriteLlamaGguf(path);
        TestFiles.PatchU64(path, layout.Tensors["blk.0.attn_q.weight"].DimsOffset, ulong.MaxValue);
        LoadFails(path, "dims must be positive");
    }

    [Fact]
    public void UnknownTensorTypeId()
    {
        using var dir = new TempDirectory();
        string path = dir.File("t.gguf");
        var layout = TestFiles.WriteLlamaGguf(path);
        TestFiles.PatchU32(path, layout.Tensors["blk.0.ffn_gate.weight"].TypeOffset, 31);
        LoadFails(path, "tensor 'blk.0.ffn_gate.weight': unknown ggml tensor type id 31");
    }

    [Fact]
    public void QuantizedTensor_IsUnsupported()
    {
        using var dir = new TempDirectory();
        string path = dir.File("q.gguf");
        var config = TestFiles.SmallConfig with { HiddenSize = 256, NumHeads = 4, HeadDim = 64 };
        TestFiles.WriteLlamaGguf(path, config, editTensors: tensors =>
        {
            int i = tensors.FindIndex(t => t.Name == "blk.1.ffn_up.weight");
            // [48, 256] Q5_0: 8 blocks of 22 bytes per row of 256 (a type this build does not repack).
            tensors[i] = GgufTensorData.FromBytes("blk.1.ffn_up.weight", [48, 256], GgmlType.Q5_0, new byte[48 * 8 * 22]);
        });
        LoadFails(path, "unsupported tensor type Q5_0 in tensor 'blk.1.ffn_up.weight' (this build loads F32/F16/BF16 and Q8_0/Q4_0/Q4_1/Q4_K/Q6_K)");
    }

    [Fact]
    public void DuplicateTensorName()
    {
        using var dir = new TempDirectory();
        string path = dir.File("dup.gguf");
        TestFiles.WriteLlamaGguf(path, editTensors: t => t.Add(t[0]));
        LoadFails(path, "duplicate tensor name 'token_embd.weight'");
    }

    [Fact]
    public void UnknownArchitecture()
    {
        using var dir = new TempDirectory();
        string path = dir.File("arch.gguf");
        TestFiles.WriteLlamaGguf(path, editMetadata: m => m.Replace("general.architecture", GgufValue.String("gpt2")));
        LoadFails(path, "unsupported architecture 'gpt2' (supported: llama, mistral, qwen2)");
    }

    [Fact]
    public void MissingConfigKey()
    {
        using var dir = new TempDirectory();
        string path = dir.File("k.gguf");
        TestFiles.WriteLlamaGguf(path, editMetadata: m => m.Remove("llama.block_count"));
        LoadFails(path, "missing metadata key 'llama.block_count'");
    }

    [Fact]
    public void WrongMetadataType()
    {
        using var dir = new TempDirectory();
        string path = dir.File("wt.gguf");
        TestFiles.WriteLlamaGguf(path, editMetadata: m => m.Replace("llama.block_count", GgufValue.String("two")));
        LoadFails(path, "metadata key 'llama.block_count' has type string, expected integer");
    }

    [Fact]
    public void ImpossibleHeadCounts()
    {
        using var dir = new TempDirectory();
        string path = dir.File("h.gguf");
        TestFiles.WriteLlamaGguf(path, editMetadata: m => m.Replace("llama.attention.head_count_kv", GgufValue.UInt32(3)));
        LoadFails(path, "attention head count 4 is not a multiple of the KV head count 3");
    }

    [Fact]
    public void UnsupportedTokenizerModel()
    {
        using var dir = new TempDirectory();
        string path = dir.File("gpt2tok.gguf");
        TestFiles.WriteLlamaGguf(path, editMetadata: m => m.Replace("tokenizer.ggml.model", GgufValue.String("gpt2")));
        LoadFails(path, "tokenizer model 'gpt2' is not supported yet");
    }

    [Fact]
    public void VocabularyDefects()
    {
        using var dir = new TempDirectory();
        string path = dir.File("vocab.gguf");
        TestFiles.WriteLlamaGguf(path, editMetadata: m => m.Replace("tokenizer.ggml.scores", GgufValue.Array(new float[5])));
        LoadFails(path, "tokenizer.ggml.scores has 5 entries for 300 tokens");

        TestFiles.WriteLlamaGguf(path, editMetadata: m => m.Replace("tokenizer.ggml.bos_token_id", GgufValue.UInt32(300)));
        LoadFails(path, "'tokenizer.ggml.bos_token_id' = 300 is outside the vocabulary of 300 tokens");

        TestFiles.WriteLlamaGguf(path, editMetadata: m => m.Replace("tokenizer.ggml.token_type", GgufValue.Array(Enumerable.Repeat(9, 300).ToArray())));
        LoadFails(path, "has unknown token_type 9");

        TestFiles.WriteLlamaGguf(path, editMetadata: m => m.Remove("tokenizer.ggml.tokens"));
        LoadFails(path, "missing metadata key 'tokenizer.ggml.tokens'");
    }

    [Fact]
    public void VocabularyWithoutTypesOrWithUInt32Types_Loads()
    {
        using var dir = new TempDirectory();
        string path = dir.File("types.gguf");
        TestFiles.WriteLlamaGguf(path, editMetadata: m => m.Remove("tokenizer.ggml.token_type"));
        using (var m = ModelLoader.Load(path))
        {
            Assert.True(m.Tokenizer.IsSpecial(1));
            Assert.Equal("héllo wörld", m.Tokenizer.Decode(m.Tokenizer.Encode("héllo wörld")));
        }
        TestFiles.WriteLlamaGguf(path, editMetadata: meta =>
        {
            int[] types = (int[])meta.Single(kv => kv.Key == "tokenizer.ggml.token_type").Value.Value;
            meta.Replace("tokenizer.ggml.token_type", GgufValue.Array(types.Select(t => (uint)t).ToArray()));
        });
        using (var m = ModelLoader.Load(path))
            Assert.Equal("héllo wörld", m.Tokenizer.Decode(m.Tokenizer.Encode("héllo wörld")));
    }

    [Fact]
    public void MissingTensor()
    {
        using var dir = new TempDirectory();
        string path = dir.File("mt.gguf");
        TestFiles.WriteLlamaGguf(path, editTensors: t => t.RemoveAll(x => x.Name == "blk.1.attn_v.weight"));
        LoadFails(path, "missing tensor 'blk.1.attn_v.weight'");
    }

    [Fact]
    public void WrongTensorShape()
    {
        using var dir = new TempDirectory();
        string path = dir.File("ws.gguf");
        TestFiles.WriteLlamaGguf(path, editTensors: t =>
        {
            int i = t.FindIndex(x => x.Name == "blk.0.ffn_down.weight");
            t[i] = GgufTensorData.FromFloats("blk.0.ffn_down.weight", [48, 32], new float[48 * 32]);
        });
        LoadFails(path, "tensor 'blk.0.ffn_down.weight' has shape [48, 32], but the config implies [32, 48]");
    }

    [Fact]
    public void UnexpectedBiasAndExtraLayer_AreErrors()
    {
        using var dir = new TempDirectory();
        string path = dir.File("b.gguf");
        TestFiles.WriteLlamaGguf(path, editTensors: t => t.Add(GgufTensorData.FromFloats("blk.0.attn_output.bias", [32], new float[32])));
        LoadFails(path, "'blk.0.attn_output.bias' is a bias this runtime does not apply");

        TestFiles.WriteLlamaGguf(path, editTensors: t => t.Add(GgufTensorData.FromFloats("blk.7.attn_norm.weight", [32], new float[32])));
        LoadFails(path, "belongs to layer 7, but the config has 2 layers");
    }

    [Fact]
    public void MissingOutput_MeansTied()
    {
        using var dir = new TempDirectory();
        string path = dir.File("tied.gguf");
        TestFiles.WriteLlamaGguf(path, editTensors: t => t.RemoveAll(x => x.Name == "output.weight"));
        using var m = ModelLoader.Load(path);
        Assert.True(m.Config.TieWordEmbeddings);
        Assert.False(m.TryGetTensor("output.weight", out _));
    }

    [Fact]
    public void Metadata_OfEveryType_RoundTrips()
    {
        using var dir = new TempDirectory();
        string path = dir.File("meta.gguf");
        var values = new List<KeyValuePair<string, GgufValue>>
        {
            new("u8", GgufValue.UInt8(200)), new("i8", GgufValue.Int8(-100)), new("u16", GgufValue.UInt16(60000)),
            new("i16", GgufValue.Int16(-30000)), new("u32", GgufValue.UInt32(4_000_000_000)), new("i32", GgufValue.Int32(-2_000_000_000)),
            new("f32", GgufValue.Float32(1.5f)), new("bool", GgufValue.Bool(true)), new("str", GgufValue.String("héllo ✓")),
            new("u64", GgufValue.UInt64(ulong.MaxValue)), new("i64", GgufValue.Int64(long.MinValue)), new("f64", GgufValue.Float64(-2.25)),
            new("strs", GgufValue.Array(new[] { "a", "", "日本" })), new("floats", GgufValue.Array(new[] { 1f, -2f })),
            new("ints", GgufValue.Array(new[] { 1, -1 })), new("bools", GgufValue.Array(new[] { true, false })),
            new("nested", GgufValue.Array(GgufValueType.Array, [GgufValue.Array(new[] { 1, 2 }), GgufValue.Array(new[] { 3 })])),
        };
        var data = Enumerable.Range(0, 10).Select(i => (float)i).ToArray();
        GgufWriter.Write(path, values, [GgufTensorData.FromFloats("t", [2, 5], data), GgufTensorData.FromFloats("h", [3], [1, 2, 3], TensorDType.F16)], alignment: 64);

        using var g = GgufFile.Open(path);
        Assert.Equal(3u, g.Version);
        Assert.Equal(64, g.Alignment);
        Assert.Equal(0, g.DataOffset % 64);
        foreach (var (key, v) in values)
        {
            var read = g.Metadata[key];
            Assert.Equal(v.Type, read.Type);
            if (v.Type == GgufValueType.Array && v.ElementType != GgufValueType.Array)
                Assert.Equal((System.Collections.IEnumerable)v.Value, (System.Collections.IEnumerable)read.Value);
            else if (v.Type != GgufValueType.Array)
                Assert.Equal(v.Value, read.Value);
        }
        var nested = (GgufValue[])g.Metadata["nested"].Value;
        Assert.Equal(new[] { 1, 2 }, (int[])nested[0].Value);
        Assert.Equal(new[] { 3 }, (int[])nested[1].Value);
        Assert.Equal(new[] { "general.alignment" }, g.MetadataKeys.Except(values.Select(v => v.Key)));

        Assert.True(g.TryGetTensor("t", out var t));
        Assert.Equal([5L, 2L], t.Dims);
        Assert.Equal([2L, 5L], t.Shape);
        Assert.Equal(GgmlType.F32, t.Type);
        Assert.True(g.TryGetTensor("h", out var h));
        Assert.Equal(6, h.ByteLength);
        Assert.Equal(0, h.RelativeOffset % 64);
    }
}
