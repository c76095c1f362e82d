// HfCheckpointLoader.cs: loads a Hugging Face Llama/Mistral/Qwen2 folder: config.json, one
// model.safetensors or a sharded model.safetensors.index.json, tokenizer.model plus
// tokenizer_config.json / special_tokens_map.json / generation_config.json. Tensor names are
// mapped to the canonical llama.cpp ones; q/k stay in HF order, so the config says RotateHalf.
// A quantization_config (GPTQ, AWQ or our own format) turns each quantized module's tensors into
// one quantized weight (HfQuantizedTensors). A sparsity_config (written by `sharpinfer prune`) turns each
// pruned module's packed tensors into one sparse weight, validated here (SparseCheckpoint).
using System.Text.Json;
using SharpInfer.Models.SafeTensors;
using SharpInfer.Quantization;
using SharpInfer.Sparsity;
using SharpInfer.Tokenization;

namespace SharpInfer.Models.HuggingFace;

internal static class HfCheckpointLoader
{
    private static readonly Dictionary<string, string> ArchitectureClasses = new(StringComparer.Ordinal)
    {
        ["LlamaForCausalLM"] = "llama",
        ["MistralForCausalLM"] = "mistral",
        ["Qwen2ForCausalLM"] = "qwen2",
    };

    public static ModelCheckpoint Load(string folder)
    {
        var configJson = JsonFile.Load(Path.Combine(folder, "config.json"));
        var partial = ReadConfig(configJson);
        var generation = JsonFile.TryLoad(Path.Combine(folder, "generation_config.json"));
        var tokenizerConfig = JsonFile.TryLoad(Path.Combine(folder, "tokenizer_config.json"));
        var specialTokensMap = JsonFile.TryLoad(Path.Combine(folder, "special_tokens_map.json"));

        var files = new List<SafeTensorsFile>();
        var quantized = new List<IDisposable>();
        try
        {
            var quantization = HfQuantizationConfig.Read(configJson.Root, configJson.Path);
            var sparsity = SparsityConfig.Read(configJson.Root, configJson.Path);
            if (quantization is not null && sparsity is not null)
                throw new ModelFormatException(configJson.Path, $"both quantization_config and {ModelPruner.ConfigSection} are present; sparse quantized weights are not supported");
            var (tensors, order, hfNames) = LoadTensors(folder, files, quantization, partial, quantized, sparsity);
            var tokenizer = LoadTokenizer(folder, configJson, generation, tokenizerConfig, specialTokensMap);

            bool tied = configJson.Bool("tie_word_embeddings") ?? false;
            var config = partial with
            {
                TieWordEmbeddings = tied,
                BosTokenId = configJson.Integer("bos_token_id") is long b ? (int)b
                    : generation?.Integer("bos_token_id") is long gb ? (int)gb : tokenizer.BosId,
                EosTokenIds = [.. tokenizer.EosIds],
            };
            config.Validate(configJson.Path);
            LlamaTensorNames.Validate(config, tensors, folder,
                name => hfNames.TryGetValue(name, out var hf) ? $"'{name}' ('{hf}')" : $"'{name}' ('{ToHuggingFaceName(name)}')");
            return new ModelCheckpoint(folder, "hf", config, tokenizer, ReadChatTemplate(tokenizerConfig), tensors, order, [.. quantized, .. files]);
        }
        catch
        {
            foreach (var q in quantized) q.Dispose();
            foreach (var f in files) f.Dispose();
            throw;
        }
    }

    /// <summary>Everything config.json decides (tokens and tying are filled in by the caller).</summary>
    internal static LlamaConfig ReadConfig(JsonFile json)
    {
        string path = json.Path;
        string? modelType = json.String("model_type");
        var classes = new List<string>();
        if (json.Element("architectures") is { ValueKind: JsonValueKind.Array } archList)
            foreach (var a in archList.EnumerateArray())
                if (a.ValueKind == JsonValueKind.String) classes.Add(a.GetString()!);

        string? arch = modelType is not null && LlamaConfig.SupportedArchitectures.Contains(modelType) ? modelType
            : classes.Select(c => ArchitectureClasses.GetValueOrDefault(c)).FirstOrDefault(a => a is not null);
        if (arch is null)
            throw new ModelFormatException(path, LlamaConfig.UnsupportedArchitectureMessage(modelType ?? classes.FirstOrDefault() ?? "(none given)"));

        string? activation = json.String("hidden_act") ?? json.String("hidden_activation");
        if (activation is not null && activation is not ("silu" or "swish"))
            throw new ModelFormatException(path, $"hidden_act '{activation}' is not supported (Llama-family models use silu)");
        if (json.Bool("mlp_bias") == true)
            throw new ModelFormatException(path, "mlp_bias = true is not supported");

        int hidden = json.RequiredPositiveInt("hidden_size");
        int layers = json.RequiredPositiveInt("num_hidden_layers");
        int heads = json.RequiredPositiveInt("num_attention_heads");
        int intermediate = json.RequiredPositiveInt("intermediate_size");
        int vocab = json.RequiredPositiveInt("vocab_size");
        int kvHeads = json.PositiveInt("num_key_value_heads") ?? heads;
        int headDim = json.PositiveInt("head_dim") ?? (hidden % heads == 0 ? hidden / heads
            : throw new ModelFormatException(path, $"hidden_size {hidden} is not a multiple of num_attention_heads {heads} and there is no head_dim"));

        // Qwen2 always has q/k/v biases and has no attention_bias field.
        bool attentionBias = arch == "qwen2" || (json.Bool("attention_bias") ?? false);

        return new LlamaConfig
        {
            Architecture = arch,
            VocabSize = vocab,
            HiddenSize = hidden,
            IntermediateSize = intermediate,
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            MaxContext = json.PositiveInt("max_position_embeddings") ?? 2048,
            RopeTheta = (float)(json.Number("rope_theta") ?? 10000.0),
            RopeScale = ReadRopeScale(json),
            RmsNormEps = (float)(json.Number("rms_norm_eps") ?? 1e-6),
            AttentionBias = attentionBias,
            RopeLayout = RopeLayout.RotateHalf,
        };
    }

    private static float ReadRopeScale(JsonFile json)
    {
        if (json.Object("rope_scaling") is not { } scaling) return 1f;
        string? type = null;
        foreach (string key in (string[])["rope_type", "type"])
            if (scaling.TryGetProperty(key, out var t) && t.ValueKind == JsonValueKind.String) { type = t.GetString(); break; }
        switch (type)
        {
            case null or "default":
                return 1f;
            case "linear":
                if (!scaling.TryGetProperty("factor", out var f) || f.ValueKind != JsonValueKind.Number || !(f.GetDouble() > 0))
                    throw new ModelFormatException(json.Path, "rope_scaling type 'linear' needs a positive 'factor'");
                return (float)(1 / f.GetDouble());
            default:
                throw new ModelFormatException(json.Path, $"rope_scaling type '{type}' is not supported yet (supported: linear)");
        }
    }

    private static (Dictionary<string, WeightTensor> Tensors, List<string> Order, Dictionary<string, string> HfNames)
        LoadTensors(string folder, List<SafeTensorsFile> files, HfQuantizationConfig? quantization, LlamaConfig config, List<IDisposable> quantized,
                    SparsityConfig? sparsity = null)
    {
        string single = Path.Combine(folder, "model.safetensors");
        string index = Path.Combine(folder, "model.safetensors.index.json");
        Dictionary<string, string>? weightMap = null;
        if (File.Exists(single))
        {
            files.Add(SafeTensorsFile.Open(single));
        }
        else if (File.Exists(index))
        {
            var json = JsonFile.Load(index);
            var map = json.Object("weight_map") ?? throw new ModelFormatException(index, "missing object 'weight_map'");
            weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw new ModelFormatException(index, $"weight_map entry '{entry.Name}' is not a file name");
                string shard = entry.Value.GetString()!;
                if (shard.Length == 0 || Path.GetFileName(shard) != shard)
                    throw new ModelFormatException(index, $"weight_map entry '{entry.Name}' names '{shard}', which is not a file in the model folder");
                weightMap[entry.Name] = shard;
            }
            foreach (string shard in weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                string shardPath = Path.Combine(folder, shard);
                if (!File.Exists(shardPath)) throw new ModelFormatException(index, $"shard '{shard}' listed in weight_map is missing");
                files.Add(SafeTensorsFile.Open(shardPath));
            }
        }
        else
        {
            string hint = Directory.EnumerateFiles(folder, "*.bin").Any() ? " (PyTorch .bin checkpoints are not supported; convert to safetensors)" : "";
            throw new ModelFormatException(folder, $"no model.safetensors or model.safetensors.index.json{hint}");
        }

        var tensors = new Dictionary<string, WeightTensor>(StringComparer.Ordinal);
        var order = new List<string>();
        var hfNames = new Dictionary<string, string>(StringComparer.Ordinal);
        var foundIn = new Dictionary<string, string>(StringComparer.Ordinal);
        // Quantized modules are stored as several tensors (qweight, scales, ...): gather them first.
        var quantizedParts = new Dictionary<string, Dictionary<string, HfQuantizedTensors.Part>>(StringComparer.Ordinal);
        var sparseParts = new Dictionary<string, Dictionary<string, SparseCheckpoint.Part>>(StringComparer.Ordinal);
        foreach (var file in files)
        {
            foreach (var info in file.Tensors)
            {
                foundIn[info.Name] = Path.GetFileName(file.Path);
                if (SparsityConfig.TrySplit(info.Name, out string sparseModule, out string sparseSuffix))
                {
                    if (sparsity is null)
                        throw new ModelFormatException(file.Path, $"tensor '{info.Name}' is a packed sparse weight, but config.json has no {ModelPruner.ConfigSection}");
                    if (!sparseParts.TryGetValue(sparseModule, out var parts))
                        sparseParts[sparseModule] = parts = new Dictionary<string, SparseCheckpoint.Part>(StringComparer.Ordinal);
                    parts[sparseSuffix] = new SparseCheckpoint.Part(file, info);
                    continue;
                }
                if (quantization is not null && HfQuantizationConfig.TrySplit(info.Name, out string module, out string suffix))
                {
                    if (!quantizedParts.TryGetValue(module, out var parts))
                        quantizedParts[module] = parts = new Dictionary<string, HfQuantizedTensors.Part>(StringComparer.Ordinal);
                    parts[suffix] = new HfQuantizedTensors.Part(file, info);
                    continue;
                }
                string? canonical = LlamaTensorNames.FromHuggingFace(info.Name);
                if (canonical is null) continue;
                var dtype = info.DType switch
                {
                    "F32" => TensorDType.F32,
                    "F16" => TensorDType.F16,
                    "BF16" => TensorDType.BF16,
                    _ => throw new ModelFormatException(file.Path, $"unsupported dtype {info.DType} in tensor '{info.Name}' (this build loads F32/F16/BF16)"),
                };
                if (hfNames.TryGetValue(canonical, out string? previous))
                    throw new ModelFormatException(file.Path, $"tensors '{previous}' and '{info.Name}' both map to '{canonical}'");
                tensors.Add(canonical, new WeightTensor(canonical, dtype, info.Shape, file.File, info.FileOffset, info.ByteLength));
                hfNames[canonical] = info.Name;
                order.Add(canonical);
            }
        }
        if (quantizedParts.Count > 0)
        {
            var expected = LlamaTensorNames.Expected(config, includeOutput: true).ToDictionary(e => e.Name, e => e.Shape, StringComparer.Ordinal);
            foreach (var (module, parts) in quantizedParts)
            {
                string anyFile = parts.Values.First().File.Path;
                string? canonical = LlamaTensorNames.FromHuggingFace(module + ".weight");
                if (canonical is null || !expected.TryGetValue(canonical, out long[]? shape) || shape.Length != 2)
                    throw new ModelFormatException(anyFile, $"quantized tensor '{module}.{parts.Keys.First()}' is not a linear weight of a {config.Architecture} model");
                if (hfNames.TryGetValue(canonical, out string? previous))
                    throw new ModelFormatException(anyFile, $"tensors '{previous}' and '{module}.qweight' both map to '{canonical}'");
                tensors.Add(canonical, HfQuantizedTensors.Build(quantization!, module, canonical, parts, (int)shape[0], (int)shape[1], quantized));
                hfNames[canonical] = module + ".qweight";
                order.Add(canonical);
            }
        }
        if (sparsity is not null)
            AddSparseTensors(folder, sparsity, sparseParts, config, tensors, order, hfNames, quantized);
        if (quantization?.Method == HfQuantizationConfig.SharpInferMethod)
        {
            foreach (string module in quantization.Modules.Keys)
                if (!quantizedParts.ContainsKey(module))
                    throw new ModelFormatException(folder, $"quantization_config.modules lists '{module}', but there is no tensor '{module}.qweight'");
        }
        if (weightMap is not null)
        {
            foreach (var (name, shard) in weightMap)
            {
                if (!foundIn.TryGetValue(name, out string? actual))
                    throw new ModelFormatException(index, $"tensor '{name}' is listed in shard '{shard}' but no shard contains it");
                if (actual != shard)
                    throw new ModelFormatException(index, $"tensor '{name}' is listed in shard '{shard}' but found in '{actual}'");
            }
        }
        return (tensors, order, hfNames);
    }

    /// <summary>Packed sparse modules become sparse tensors; dense tensors the config claims sparse are packed at load.</summary>
    private static void AddSparseTensors(string folder, SparsityConfig sparsity, Dictionary<string, Dictionary<string, SparseCheckpoint.Part>> sparseParts,
                                         LlamaConfig config, Dictionary<string, WeightTensor> tensors, List<string> order,
                                         Dictionary<string, string> hfNames, List<IDisposable> owned)
    {
        var expected = LlamaTensorNames.Expected(config, includeOutput: true).ToDictionary(e => e.Name, e => e.Shape, StringComparer.Ordinal);
        foreach (var (module, parts) in sparseParts)
        {
            string anyFile = parts.Values.First().File.Path;
            string? canonical = LlamaTensorNames.FromHuggingFace(module + ".weight");
            if (canonical is null || !expected.TryGetValue(canonical, out long[]? shape) || shape.Length != 2)
                throw new ModelFormatException(anyFile, $"sparse tensor '{module}.{parts.Keys.First()}' is not a linear weight of a {config.Architecture} model");
            if (hfNames.TryGetValue(canonical, out string? previous))
                throw new ModelFormatException(anyFile, $"tensors '{previous}' and '{module}.sparse_values' both map to '{canonical}'");
            tensors.Add(canonical, SparseCheckpoint.Build(sparsity, module, canonical, parts, (int)shape[0], (int)shape[1], owned));
            hfNames[canonical] = module + ".sparse_values";
            order.Add(canonical);
        }
        // Claims over dense tensors: listed modules without packed parts, or every block linear.
        var claims = new List<(string Module, SparseFormat Format)>();
        foreach (var (module, spec) in sparsity.Modules)
            if (!sparseParts.ContainsKey(module)) claims.Add((module, spec.Format));
        if (sparsity.AllLinears is { } all)
            for (int l = 0; l < config.NumLayers; l++)
                foreach (string suffix in (string[])["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"])
                    claims.Add(($"model.layers.{l}.{suffix}", all));
        foreach (var (module, format) in claims)
        {
            string? canonical = LlamaTensorNames.FromHuggingFace(module + ".weight");
            if (canonical is null || !tensors.TryGetValue(canonical, out var dense))
                throw new ModelFormatException(folder, $"{ModelPruner.ConfigSection} lists '{module}', but there is no tensor '{module}.weight' or '{module}.sparse_values'");
            if (dense.IsSparse || dense.IsQuantized) continue;
            if (expected.TryGetValue(canonical, out long[]? shape) && !dense.Shape.AsSpan().SequenceEqual(shape))
                continue; // LlamaTensorNames.Validate reports the shape error.
            tensors[canonical] = SparseCheckpoint.PackDense(dense, module + ".weight", format, owned);
        }
    }

    private static string ToHuggingFaceName(string canonical) => canonical switch
    {
        LlamaTensorNames.TokenEmbedding => "model.embed_tokens.weight",
        LlamaTensorNames.OutputNorm => "model.norm.weight",
        LlamaTensorNames.Output => "lm_head.weight",
        _ => canonical,
    };

    private static TextTokenizer LoadTokenizer(string folder, JsonFile config, JsonFile? generation, JsonFile? tokenizerConfig, JsonFile? specialMap)
    {
        string modelPath = Path.Combine(folder, "tokenizer.model");
        if (!File.Exists(modelPath))
        {
            throw new ModelFormatException(folder, File.Exists(Path.Combine(folder, "tokenizer.json"))
                ? "only tokenizer.json (a Hugging Face fast tokenizer) is present; this build needs a SentencePiece tokenizer.model"
                : "no tokenizer.model in the model folder");
        }
        byte[] proto;
        try
        {
            proto = File.ReadAllBytes(modelPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(modelPath, $"cannot read: {e.Message}", e);
        }
        var model = SentencePieceModel.Parse(proto, modelPath);

        var added = new List<(int Id, string Content, bool Special)>();
        if (tokenizerConfig?.Object("added_tokens_decoder") is { } decoder)
        {
            foreach (var entry in decoder.EnumerateObject())
            {
                if (!int.TryParse(entry.Name, out int id) || id < 0 || entry.Value.ValueKind != JsonValueKind.Object ||
                    !entry.Value.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                    throw new ModelFormatException(tokenizerConfig.Path, $"added_tokens_decoder entry '{entry.Name}' is malformed");
                bool special = entry.Value.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
                added.Add((id, content.GetString()!, special));
            }
        }

        // Stop ids: whatever config.json and generation_config.json list, plus the configured eos_token.
        var pieceIds = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < model.Pieces.Count; i++) pieceIds.TryAdd(model.Pieces[i].Piece, i);
        foreach (var (id, content, _) in added) pieceIds.TryAdd(content, id);
        var eos = new List<int>();
        eos.AddRange(config.IntOrIntList("eos_token_id"));
        if (generation is not null) eos.AddRange(generation.IntOrIntList("eos_token_id"));
        string? eosText = tokenizerConfig?.TokenText("eos_token") ?? specialMap?.TokenText("eos_token");
        if (eosText is not null && pieceIds.TryGetValue(eosText, out int eosFromText)) eos.Add(eosFromText);

        return TextTokenizer.Create(model, proto, modelPath, new TextTokenizer.TokenizerOptions
        {
            AddBosToken = tokenizerConfig?.Bool("add_bos_token") ?? true,
            AddEosToken = tokenizerConfig?.Bool("add_eos_token") ?? false,
            ExtraEosIds = eos,
            AddedTokens = added,
        });
    }

    private static string? ReadChatTemplate(JsonFile? tokenizerConfig)
    {
        if (tokenizerConfig?.Element("chat_template") is not { } template) return null;
        if (template.ValueKind == JsonValueKind.String) return template.GetString();
        if (template.ValueKind == JsonValueKind.Array)
        {
            // Newer configs list named templates; "default" is the one to use for chat.
            foreach (var t in template.EnumerateArray())
                if (t.ValueKind == JsonValueKind.Object && t.TryGetProperty("name", out var n) && n.GetString() == "default" &&
                    t.TryGetProperty("template", out var body) && body.ValueKind == JsonValueKind.String)
                    return body.GetString();
        }
        return null;
    }
}
