// HfValidationTests.cs: Hugging Face folders: config.json fields and defaults, sharded safetensors,
// and every kind of bad safetensors / config input becoming a ModelFormatException that says what
// is wrong. Most cases start from a copy of the stories260K folder.
using System.Text.Json.Nodes;
using SharpInfer.Models;
using SharpInfer.Models.SafeTensors;

namespace SharpInfer.Tests.Models;

public sealed class HfValidationTests
{
    private static ModelFormatException LoadFails(string path, string expectedPhrase)
    {
        var e = Assert.Throws<ModelFormatException>(() => ModelLoader.Load(path).Dispose());
        Assert.Contains(expectedPhrase, e.Message);
        return e;
    }

    /// <summary>A copy of stories260K/hf in a temp folder.</summary>
    private static TempDirectory CopyStories()
    {
        TestModels.RequireStories260K();
        var dir = new TempDirectory();
        TestFiles.CopyFolder(TestModels.Stories260KHf, dir.Path);
        return dir;
    }

    private static void EditConfig(string folder, Action<JsonObject> edit, string file = "config.json")
    {
        string path = Path.Combine(folder, file);
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }

    /// <summary>A minimal valid HF folder (tiny dims) around a hand-written safetensors file.</summary>
    private static void WriteTinyHfFolder(string folder, IReadOnlyList<TestFiles.SafeTensor> tensors, string? headerOverride = null, ulong? headerLength = null)
    {
        TestModels.RequireStories260K();
        File.Copy(Path.Combine(TestModels.Stories260KHf, "tokenizer.model"), Path.Combine(folder, "tokenizer.model"));
        File.WriteAllText(Path.Combine(folder, "config.json"), """
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 8,
             "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "tie_word_embeddings": true}
            """);
        TestFiles.WriteSafeTensors(Path.Combine(folder, "model.safetensors"), tensors, headerOverride, headerLength);
    }

    private static TestFiles.SafeTensor F32(string name, params long[] shape) =>
        new(name, "F32", shape, new byte[shape.Aggregate(4L, (a, b) => a * b)]);

    private static List<TestFiles.SafeTensor> TinyTensors() =>
    [
        F32("model.embed_tokens.weight", 512, 8),
        F32("model.layers.0.input_layernorm.weight", 8),
        F32("model.layers.0.self_attn.q_proj.weight", 8, 8),
        F32("model.layers.0.self_attn.k_proj.weight", 8, 8),
        F32("model.layers.0.self_attn.v_proj.weight", 8, 8),
        F32("model.layers.0.self_attn.o_proj.weight", 8, 8),
        F32("model.layers.0.post_attention_layernorm.weight", 8),
        F32("model.layers.0.mlp.gate_proj.weight", 16, 8),
        F32("model.layers.0.mlp.up_proj.weight", 16, 8),
        F32("model.layers.0.mlp.down_proj.weight", 8, 16),
        F32("model.norm.weight", 8),
    ];

    [SkippableFact]
    public void TinyHandWrittenFolder_LoadsWithDefaults()
    {
        using var dir = new TempDirectory();
        WriteTinyHfFolder(dir.Path, TinyTensors());
        using var m = ModelLoader.Load(dir.Path);
        var c = m.Config;
        Assert.Equal(2, c.NumKvHeads);        // defaults to num_attention_heads
        Assert.Equal(4, c.HeadDim);           // hidden / heads
        Assert.Equal(10000f, c.RopeTheta);
        Assert.Equal(1e-6f, c.RmsNormEps);
        Assert.Equal(2048, c.MaxContext);
        Assert.True(c.TieWordEmbeddings);
        Assert.False(m.TryGetTensor("output.weight", out _));
        Assert.Equal([8L, 8L], m.GetTensor("blk.0.attn_q.weight").Shape);
    }

    [SkippableTheory]
    [InlineData("hidden_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("num_attention_heads")]
    [InlineData("intermediate_size")]
    [InlineData("vocab_size")]
    public void ConfigMissingRequiredField(string field)
    {
        using var dir = CopyStories();
        EditConfig(dir.Path, c => c.Remove(field));
        var e = LoadFails(dir.Path, $"missing required field '{field}'");
        Assert.Contains("config.json", e.Message);
    }

    [SkippableFact]
    public void ConfigFieldOfWrongType()
    {
        using var dir = CopyStories();
        EditConfig(dir.Path, c => c["hidden_size"] = "sixty-four");
        LoadFails(dir.Path, "field 'hidden_size' must be an integer");
    }

    [SkippableFact]
    public void ConfigNotJson()
    {
        using var dir = CopyStories();
        File.WriteAllText(Path.Combine(dir.Path, "config.json"), "{ \"hidden_size\": 64, ");
        LoadFails(dir.Path, "invalid JSON");
    }

    [SkippableTheory]
    [InlineData("gpt2", "GPT2LMHeadModel", "unsupported architecture 'gpt2' (supported: llama, mistral, qwen2)")]
    [InlineData(null, "FalconForCausalLM", "unsupported architecture 'FalconForCausalLM'")]
    public void UnknownArchitecture(string? modelType, string architecture, string phrase)
    {
        using var dir = CopyStories();
        EditConfig(dir.Path, c =>
        {
            if (modelType is null) c.Remove("model_type");
            else c["model_type"] = modelType;
            c["architectures"] = new JsonArray(architecture);
        });
        LoadFails(dir.Path, phrase);
    }

    [SkippableFact]
    public void ArchitectureFromClassNameAlone_IsAccepted()
    {
        using var dir = CopyStories();
        EditConfig(dir.Path, c => c.Remove("model_type"));
        using var m = ModelLoader.Load(dir.Path);
        Assert.Equal("llama", m.Config.Architecture);
    }

    [SkippableFact]
    public void ImpossibleHeadCounts()
    {
        using var dir = CopyStories();
        EditConfig(dir.Path, c => c["num_key_value_heads"] = 3);
        LoadFails(dir.Path, "attention head count 8 is not a multiple of the KV head count 3");
    }

    [SkippableFact]
    public void OptionalFields_AreRead()
    {
        using var dir = CopyStories();
        EditConfig(dir.Path, c =>
        {
            c["rope_theta"] = 500000.0;
            c["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 4.0 };
            c["eos_token_id"] = new JsonArray(2, 7);
        });
        EditConfig(dir.Path, g => g["eos_token_id"] = new JsonArray(2, 9), "generation_config.json");
        using var m = ModelLoader.Load(dir.Path);
        Assert.Equal(500000f, m.Config.RopeTheta);
        Assert.Equal(0.25f, m.Config.RopeScale);
        Assert.Equal([2, 7, 9], m.Config.EosTokenIds);
        Assert.Equal([2, 7, 9], m.Tokenizer.EosIds);
    }

    [SkippableFact]
    public void UnsupportedRopeScaling()
    {
        using var dir = CopyStories();
        EditConfig(dir.Path, c => c["rope_scaling"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 });
        LoadFails(dir.Path, "rope_scaling type 'yarn' is not supported yet");
    }

    [SkippableFact]
    public void ChatTemplate_IsRead()
    {
        using var dir = CopyStories();
        EditConfig(dir.Path, c => c["chat_template"] = "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}", "tokenizer_config.json");
        using var m = ModelLoader.Load(dir.Path);
        Assert.StartsWith("{{ bos_token }}", m.ChatTemplate);
    }

    [SkippableFact]
    public void NotTiedAndNoLmHead_IsAMissingTensor()
    {
        using var dir = new TempDirectory();
        WriteTinyHfFolder(dir.Path, TinyTensors());
        EditConfig(dir.Path, c => c["tie_word_embeddings"] = false);
        LoadFails(dir.Path, "missing tensor 'output.weight' ('lm_head.weight')");
    }

    [SkippableFact]
    public void MissingLayerTensor_NamesBothNames()
    {
        using var dir = new TempDirectory();
        WriteTinyHfFolder(dir.Path, TinyTensors().Where(t => !t.Name.Contains("up_proj")).ToList());
        LoadFails(dir.Path, "missing tensor 'blk.0.ffn_up.weight'");
    }

    [SkippableFact]
    public void WrongShape_NamesTheHfTensor()
    {
        using var dir = new TempDirectory();
        var tensors = TinyTensors();
        tensors[3] = F32("model.layers.0.self_attn.k_proj.weight", 8, 4);
        WriteTinyHfFolder(dir.Path, tensors);
        LoadFails(dir.Path, "tensor 'blk.0.attn_k.weight' ('model.layers.0.self_attn.k_proj.weight') has shape [8, 4], but the config implies [8, 8]");
    }

    [SkippableFact]
    public void SafetensorsHeaderLiesAboutSize()
    {
        using var dir = new TempDirectory();
        var tensors = TinyTensors();
        tensors[1] = tensors[1] with { Shape = [16] }; // 8 floats of data, header claims 16
        WriteTinyHfFolder(dir.Path, tensors);
        LoadFails(dir.Path, "tensor 'model.layers.0.input_layernorm.weight': data_offsets span 32 bytes but shape [16] F32 needs 64: the header lies about the size");
    }

    [SkippableFact]
    public void SafetensorsOffsetsPastTheData()
    {
        using var dir = new TempDirectory();
        var tensors = TinyTensors();
        tensors[^1] = tensors[^1] with { Offsets = [1_000_000, 1_000_032] };
        WriteTinyHfFolder(dir.Path, tensors);
        LoadFails(dir.Path, "run past the end of the data section");
    }

    [SkippableFact]
    public void SafetensorsHeaderLengthPastEof()
    {
        using var dir = new TempDirectory();
        WriteTinyHfFolder(dir.Path, TinyTensors(), headerLength: 1UL << 40);
        LoadFails(dir.Path, "safetensors header length 1099511627776 runs past the end of the file");
    }

    [SkippableFact]
    public void SafetensorsBadJson()
    {
        using var dir = new TempDirectory();
        WriteTinyHfFolder(dir.Path, TinyTensors(), headerOverride: "{\"model.norm.weight\": {\"dtype\": \"F32\", ");
        LoadFails(dir.Path, "safetensors header is not valid JSON");
    }

    [SkippableFact]
    public void SafetensorsTooShort()
    {
        using var dir = new TempDirectory();
        WriteTinyHfFolder(dir.Path, TinyTensors());
        TestFiles.Truncate(Path.Combine(dir.Path, "model.safetensors"), 5);
        LoadFails(dir.Path, "truncated safetensors file");
    }

    [SkippableFact]
    public void SafetensorsUnsupportedDtype()
    {
        using var dir = new TempDirectory();
        var tensors = TinyTensors();
        tensors[2] = new TestFiles.SafeTensor("model.layers.0.self_attn.q_proj.weight", "I8", [8, 8], new byte[64]);
        WriteTinyHfFolder(dir.Path, tensors);
        LoadFails(dir.Path, "unsupported dtype I8 in tensor 'model.layers.0.self_attn.q_proj.weight' (this build loads F32/F16/BF16)");
    }

    [SkippableFact]
    public void SafetensorsUnknownDtype()
    {
        using var dir = new TempDirectory();
        var tensors = TinyTensors();
        tensors[2] = new TestFiles.SafeTensor("model.layers.0.self_attn.q_proj.weight", "Q7", [8, 8], new byte[64]);
        WriteTinyHfFolder(dir.Path, tensors);
        LoadFails(dir.Path, "unknown dtype 'Q7'");
    }

    [SkippableFact]
    public void Bf16AndF16Tensors_Convert()
    {
        using var dir = new TempDirectory();
        var tensors = TinyTensors();
        var bf16 = new byte[16];
        var f16 = new byte[16];
        for (int i = 0; i < 8; i++)
        {
            BitConverter.TryWriteBytes(bf16.AsSpan(i * 2), TensorDTypeExtensions.SingleToBFloat16(i + 0.5f));
            BitConverter.TryWriteBytes(f16.AsSpan(i * 2), (Half)(i - 0.25f));
        }
        tensors[1] = new TestFiles.SafeTensor("model.layers.0.input_layernorm.weight", "BF16", [8], bf16);
        tensors[6] = new TestFiles.SafeTensor("model.layers.0.post_attention_layernorm.weight", "F16", [8], f16);
        WriteTinyHfFolder(dir.Path, tensors);
        using var m = ModelLoader.Load(dir.Path);
        Assert.Equal(TensorDType.BF16, m.GetTensor("blk.0.attn_norm.weight").DType);
        Assert.Equal(Enumerable.Range(0, 8).Select(i => i + 0.5f), m.GetTensor("blk.0.attn_norm.weight").ToFloat32());
        Assert.Equal(Enumerable.Range(0, 8).Select(i => i - 0.25f), m.GetTensor("blk.0.ffn_norm.weight").ToFloat32());
    }

    [SkippableFact]
    public void NoTokenizerModel()
    {
        using var dir = CopyStories();
        File.Delete(Path.Combine(dir.Path, "tokenizer.model"));
        LoadFails(dir.Path, "no tokenizer.model");
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer.json"), "{}");
        LoadFails(dir.Path, "needs a SentencePiece tokenizer.model");
    }

    [SkippableFact]
    public void NoWeights()
    {
        using var dir = CopyStories();
        File.Delete(Path.Combine(dir.Path, "model.safetensors"));
        LoadFails(dir.Path, "no model.safetensors or model.safetensors.index.json");
    }

    [SkippableFact]
    public void ShardedCheckpoint_LoadsLikeTheSingleFile()
    {
        using var dir = CopyStories();
        string single = Path.Combine(dir.Path, "model.safetensors");
        var shards = new[] { new List<TestFiles.SafeTensor>(), new List<TestFiles.SafeTensor>() };
        var weightMap = new JsonObject();
        using (var file = SafeTensorsFile.Open(single))
        {
            int i = 0;
            foreach (var t in file.Tensors)
            {
                var bytes = file.File.Span(t.FileOffset, (int)t.ByteLength).ToArray();
                int shard = i++ % 2;
                shards[shard].Add(new TestFiles.SafeTensor(t.Name, t.DType, t.Shape, bytes));
                weightMap[t.Name] = $"model-0000{shard + 1}-of-00002.safetensors";
            }
        }
        File.Delete(single);
        TestFiles.WriteSafeTensors(Path.Combine(dir.Path, "model-00001-of-00002.safetensors"), shards[0]);
        TestFiles.WriteSafeTensors(Path.Combine(dir.Path, "model-00002-of-00002.safetensors"), shards[1]);
        string index = Path.Combine(dir.Path, "model.safetensors.index.json");
        File.WriteAllText(index, new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = weightMap }.ToJsonString());

        using (var sharded = ModelLoader.Load(dir.Path))
        using (var original = ModelLoader.Load(TestModels.Stories260KHf))
        {
            Assert.Equal(original.Config, sharded.Config);
            Assert.Equal(original.TensorNames.Order(), sharded.TensorNames.Order());
            foreach (string name in original.TensorNames)
                Assert.True(original.GetTensor(name).Bytes.SequenceEqual(sharded.GetTensor(name).Bytes), name);
        }

        // An index that points at the wrong shard, or a missing shard, is an error.
        weightMap["model.norm.weight"] = weightMap["model.norm.weight"]!.GetValue<string>().Contains("00001")
            ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
        File.WriteAllText(index, new JsonObject { ["weight_map"] = JsonNode.Parse(weightMap.ToJsonString()) }.ToJsonString());
        LoadFails(dir.Path, "tensor 'model.norm.weight' is listed in shard");
        weightMap["model.norm.weight"] = "model-00003-of-00002.safetensors";
        File.WriteAllText(index, new JsonObject { ["weight_map"] = JsonNode.Parse(weightMap.ToJsonString()) }.ToJsonString());
        LoadFails(dir.Path, "shard 'model-00003-of-00002.safetensors' listed in weight_map is missing");
        weightMap["model.norm.weight"] = "../elsewhere.safetensors";
        File.WriteAllText(index, new JsonObject { ["weight_map"] = JsonNode.Parse(weightMap.ToJsonString()) }.ToJsonString());
        LoadFails(dir.Path, "which is not a file in the model folder");
    }

    [Fact]
    public void PathsThatAreNotModels()
    {
        using var dir = new TempDirectory();
        LoadFails(dir.File("nothing-here"), "no such file or folder");
        LoadFails(dir.Path, "folder has no config.json");
        File.WriteAllText(dir.File("notes.txt"), "hello");
        LoadFails(dir.File("notes.txt"), "not a .gguf file or a Hugging Face folder");
        File.WriteAllBytes(dir.File("empty.gguf"), []);
        LoadFails(dir.File("empty.gguf"), "truncated");
    }
}
