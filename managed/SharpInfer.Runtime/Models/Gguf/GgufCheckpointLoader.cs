// GgufCheckpointLoader.cs: turns a parsed GGUF file into a ModelCheckpoint: the Llama config from
// the {arch}.* keys, the SentencePiece tokenizer from tokenizer.ggml.*, and tensors that point
// into the mapped file (dense) or are repacked exactly into the si_qmatmul layout at load
// (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K; see GgufRepack). q/k stay as stored; the config says which RoPE
// layout they need.
using SharpInfer.Quantization;
using SharpInfer.Tokenization;

namespace SharpInfer.Models.Gguf;

internal static unsafe class GgufCheckpointLoader
{
    public static ModelCheckpoint Load(string path)
    {
        var gguf = GgufFile.Open(path);
        var owned = new List<IDisposable> { gguf };
        try
        {
            // Architecture first: a model of another family should say so, not fail on a detail.
            string arch = gguf.GetString("general.architecture")
                ?? throw new ModelFormatException(path, "missing metadata key 'general.architecture'");
            if (!LlamaConfig.SupportedArchitectures.Contains(arch))
                throw new ModelFormatException(path, LlamaConfig.UnsupportedArchitectureMessage(arch));

            var tensors = new Dictionary<string, WeightTensor>(StringComparer.Ordinal);
            var order = new List<string>();
            foreach (var info in gguf.Tensors)
            {
                if (GgmlTypeInfo.TryToDType(info.Type, out var dtype))
                    tensors.Add(info.Name, new WeightTensor(info.Name, dtype, info.Shape, gguf.File, info.FileOffset, info.ByteLength));
                else if (GgufRepack.IsSupported(info.Type))
                    tensors.Add(info.Name, RepackQuantized(gguf, info, owned));
                else
                    throw new ModelFormatException(path, $"unsupported tensor type {GgmlTypeInfo.Name(info.Type)} in tensor '{info.Name}' " +
                        $"(this build loads F32/F16/BF16 and {string.Join("/", GgufRepack.SupportedTypes)})");
                order.Add(info.Name);
            }

            var tokenizer = ReadTokenizer(gguf);
            var config = ReadConfig(gguf, tensors, tokenizer);
            config.Validate(path);
            LlamaTensorNames.Validate(config, tensors, path);
            return new ModelCheckpoint(path, "gguf", config, tokenizer, gguf.GetString("tokenizer.chat_template"), tensors, order, owned);
        }
        catch
        {
            foreach (var d in owned) d.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Repacks a block-quantized matrix into the si_qmatmul layout at load (exactly; see GgufRepack).
    /// The GGUF blocks interleave scales with values, so the result is a new native copy.
    /// </summary>
    private static WeightTensor RepackQuantized(GgufFile gguf, GgufTensorInfo info, List<IDisposable> owned)
    {
        long[] shape = info.Shape;
        if (shape.Length != 2)
            throw new ModelFormatException(gguf.Path, $"tensor '{info.Name}' is {GgmlTypeInfo.Name(info.Type)} with {shape.Length} dims; quantized tensors must be 2-D matrices");
        if (shape[0] > int.MaxValue || shape[1] > int.MaxValue)
            throw new ModelFormatException(gguf.Path, $"tensor '{info.Name}' [{string.Join(", ", shape)}] is too large");
        var weight = GgufRepack.Repack(info.Type, gguf.File.Base == null ? 0 : (nint)(gguf.File.Base + info.FileOffset),
                                       info.ByteLength, (int)shape[0], (int)shape[1]);
        owned.Add(weight);
        return new WeightTensor(info.Name, weight, gguf.Path, GgmlTypeInfo.Name(info.Type));
    }

    internal static LlamaConfig ReadConfig(GgufFile gguf, IReadOnlyDictionary<string, WeightTensor> tensors, TextTokenizer tokenizer)
    {
        string path = gguf.Path;
        string arch = gguf.GetString("general.architecture")
            ?? throw new ModelFormatException(path, "missing metadata key 'general.architecture'");
        if (!LlamaConfig.SupportedArchitectures.Contains(arch))
            throw new ModelFormatException(path, LlamaConfig.UnsupportedArchitectureMessage(arch));

        int RequiredInt(string suffix) => OptionalInt(suffix)
            ?? throw new ModelFormatException(path, $"missing metadata key '{arch}.{suffix}'");
        int? OptionalInt(string suffix)
        {
            string key = $"{arch}.{suffix}";
            if (gguf.TryGetValue(key, out var v) && v.Type == GgufValueType.Array)
                throw new ModelFormatException(path, $"metadata '{key}' is a per-layer array, which this build does not support");
            long? value = gguf.GetInteger(key);
            if (value is null) return null;
            if (value <= 0 || value > int.MaxValue)
                throw new ModelFormatException(path, $"metadata '{key}' = {value} is out of range (must be in [1, {int.MaxValue}])");
            return (int)value;
        }
        float? OptionalFloat(string suffix) => (float?)gguf.GetNumber($"{arch}.{suffix}");

        int hidden = RequiredInt("embedding_length");
        int heads = RequiredInt("attention.head_count");
        int kvHeads = OptionalInt("attention.head_count_kv") ?? heads;
        int headDim = OptionalInt("attention.key_length") ?? (hidden % heads == 0 ? hidden / heads
            : throw new ModelFormatException(path, $"embedding_length {hidden} is not a multiple of head_count {heads} and there is no attention.key_length"));
        int? valueDim = OptionalInt("attention.value_length");
        if (valueDim is not null && valueDim != headDim)
            throw new ModelFormatException(path, $"attention.value_length {valueDim} differs from the key length {headDim} (not supported)");
        int? ropeDims = OptionalInt("rope.dimension_count");
        if (ropeDims is not null && ropeDims != headDim)
            throw new ModelFormatException(path, $"rope.dimension_count {ropeDims} differs from the head dim {headDim} (partial rotary embeddings are not supported)");
        float eps = OptionalFloat("attention.layer_norm_rms_epsilon")
            ?? throw new ModelFormatException(path, $"missing metadata key '{arch}.attention.layer_norm_rms_epsilon'");

        int vocab = OptionalInt("vocab_size")
            ?? (tensors.TryGetValue(LlamaTensorNames.TokenEmbedding, out var embedding) && embedding.Shape.Length == 2 && embedding.Shape[0] <= int.MaxValue
                ? (int)embedding.Shape[0] : tokenizer.VocabSize);

        return new LlamaConfig
        {
            Architecture = arch,
            VocabSize = vocab,
            HiddenSize = hidden,
            IntermediateSize = RequiredInt("feed_forward_length"),
            NumLayers = RequiredInt("block_count"),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            MaxContext = RequiredInt("context_length"),
            RopeTheta = OptionalFloat("rope.freq_base") ?? 10000f,
            RopeScale = ReadRopeScale(gguf, arch),
            RmsNormEps = eps,
            TieWordEmbeddings = !tensors.ContainsKey(LlamaTensorNames.Output),
            AttentionBias = tensors.ContainsKey(LlamaTensorNames.AttnQBias(0)),
            // llama.cpp runs llama/mistral with adjacent-pair ("normal") RoPE on unpermuted q/k, and
            // qwen2 with NeoX (rotate-half) RoPE.
            RopeLayout = arch == "qwen2" ? RopeLayout.RotateHalf : RopeLayout.AdjacentPairs,
            BosTokenId = tokenizer.BosId,
            EosTokenIds = [.. tokenizer.EosIds],
        };
    }

    private static float ReadRopeScale(GgufFile gguf, string arch)
    {
        string? type = gguf.GetString($"{arch}.rope.scaling.type");
        double? factor = gguf.GetNumber($"{arch}.rope.scaling.factor");
        double? legacyLinear = gguf.GetNumber($"{arch}.rope.scale_linear");
        switch (type)
        {
            case null:
                if (legacyLinear is { } l && l != 0 && l != 1) return (float)(1 / l);
                return 1f;
            case "none":
                return 1f;
            case "linear":
                double f = factor ?? legacyLinear ?? 1;
                if (!(f > 0)) throw new ModelFormatException(gguf.Path, $"rope scaling factor {f} must be positive");
                return (float)(1 / f);
            default:
                throw new ModelFormatException(gguf.Path, $"rope scaling type '{type}' is not supported yet (supported: none, linear)");
        }
    }

    /// <summary>Builds the tokenizer from tokenizer.ggml.* (SentencePiece "llama" vocabularies only).</summary>
    internal static TextTokenizer ReadTokenizer(GgufFile gguf)
    {
        string path = gguf.Path;
        string model = gguf.GetString("tokenizer.ggml.model")
            ?? throw new ModelFormatException(path, "missing metadata key 'tokenizer.ggml.model' (no vocabulary in this GGUF)");
        if (model != "llama")
            throw new ModelFormatException(path, $"tokenizer model '{model}' is not supported yet (this build reads SentencePiece 'llama' vocabularies)");

        string[] tokens = gguf.GetArray<string>("tokenizer.ggml.tokens")
            ?? throw new ModelFormatException(path, "missing metadata key 'tokenizer.ggml.tokens'");
        int n = tokens.Length;
        if (n == 0) throw new ModelFormatException(path, "tokenizer.ggml.tokens is empty");
        float[]? scores = gguf.GetFloatArray("tokenizer.ggml.scores");
        long[]? types = gguf.GetIntegerArray("tokenizer.ggml.token_type");
        if (scores is not null && scores.Length != n)
            throw new ModelFormatException(path, $"tokenizer.ggml.scores has {scores.Length} entries for {n} tokens");
        if (types is not null && types.Length != n)
            throw new ModelFormatException(path, $"tokenizer.ggml.token_type has {types.Length} entries for {n} tokens");

        int Id(string key, int fallback)
        {
            long? v = gguf.GetInteger(key);
            if (v is null) return fallback;
            if (v < 0 || v >= n) throw new ModelFormatException(path, $"metadata '{key}' = {v} is outside the vocabulary of {n} tokens");
            return (int)v;
        }
        int unk = Id("tokenizer.ggml.unknown_token_id", 0);
        int bos = Id("tokenizer.ggml.bos_token_id", 1);
        int eos = Id("tokenizer.ggml.eos_token_id", 2);

        var pieces = new List<SentencePiece>(n);
        bool hasBytes = false;
        for (int i = 0; i < n; i++)
        {
            PieceType type;
            if (types is not null)
            {
                if (types[i] is < 1 or > 6)
                    throw new ModelFormatException(path, $"token {i} '{tokens[i]}' has unknown token_type {types[i]} (expected 1..6)");
                type = (PieceType)types[i];
            }
            else
            {
                type = i == unk ? PieceType.Unknown
                    : i == bos || i == eos ? PieceType.Control
                    : SentencePieceModel.TryParseBytePiece(tokens[i], out _) ? PieceType.Byte
                    : PieceType.Normal;
            }
            hasBytes |= type == PieceType.Byte;
            pieces.Add(new SentencePiece(tokens[i], scores?[i] ?? 0f, type));
        }

        var extraEos = new List<int>();
        foreach (string key in (string[])["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"])
        {
            long? v = gguf.GetInteger(key);
            if (v is >= 0 && v < n) extraEos.Add((int)v);
        }

        var sp = new SentencePieceModel
        {
            Pieces = pieces,
            ModelType = SentencePieceModel.ModelTypeBpe,
            ByteFallback = hasBytes,
            UnkId = unk,
            BosId = bos,
            EosId = eos,
            PadId = -1,
            NormalizerName = "identity",
            AddDummyPrefix = gguf.GetBool("tokenizer.ggml.add_space_prefix") ?? true,
            RemoveExtraWhitespaces = false, // llama.cpp never collapses whitespace
            EscapeWhitespaces = true,
        };
        return TextTokenizer.Create(sp, protoBytes: null, path, new TextTokenizer.TokenizerOptions
        {
            AddBosToken = gguf.GetBool("tokenizer.ggml.add_bos_token") ?? true,
            AddEosToken = gguf.GetBool("tokenizer.ggml.add_eos_token") ?? false,
            ExtraEosIds = extraEos,
        });
    }
}
