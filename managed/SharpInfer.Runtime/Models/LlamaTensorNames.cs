// LlamaTensorNames.cs: the canonical (llama.cpp) tensor names of a Llama-family checkpoint, the
// Hugging Face -> canonical mapping, and the check that a checkpoint has every tensor the config
// needs, with the right shapes, and nothing this runtime would silently ignore.
using System.Text.RegularExpressions;

namespace SharpInfer.Models;

/// <summary>Canonical tensor names, as llama.cpp spells them in GGUF files.</summary>
public static partial class LlamaTensorNames
{
    public const string TokenEmbedding = "token_embd.weight";
    public const string OutputNorm = "output_norm.weight";
    public const string Output = "output.weight";

    public static string AttnNorm(int layer) => $"blk.{layer}.attn_norm.weight";
    public static string AttnQ(int layer) => $"blk.{layer}.attn_q.weight";
    public static string AttnK(int layer) => $"blk.{layer}.attn_k.weight";
    public static string AttnV(int layer) => $"blk.{layer}.attn_v.weight";
    public static string AttnQBias(int layer) => $"blk.{layer}.attn_q.bias";
    public static string AttnKBias(int layer) => $"blk.{layer}.attn_k.bias";
    public static string AttnVBias(int layer) => $"blk.{layer}.attn_v.bias";
    public static string AttnOutput(int layer) => $"blk.{layer}.attn_output.weight";
    public static string FfnNorm(int layer) => $"blk.{layer}.ffn_norm.weight";
    public static string FfnGate(int layer) => $"blk.{layer}.ffn_gate.weight";
    public static string FfnUp(int layer) => $"blk.{layer}.ffn_up.weight";
    public static string FfnDown(int layer) => $"blk.{layer}.ffn_down.weight";

    /// <summary>Every tensor <paramref name="config"/> needs, with its row-major shape.</summary>
    public static IEnumerable<(string Name, long[] Shape)> Expected(LlamaConfig config, bool includeOutput)
    {
        long h = config.HiddenSize, q = (long)config.NumHeads * config.HeadDim, kv = (long)config.NumKvHeads * config.HeadDim;
        long ff = config.IntermediateSize, v = config.VocabSize;
        yield return (TokenEmbedding, [v, h]);
        for (int i = 0; i < config.NumLayers; i++)
        {
            yield return (AttnNorm(i), [h]);
            yield return (AttnQ(i), [q, h]);
            yield return (AttnK(i), [kv, h]);
            yield return (AttnV(i), [kv, h]);
            if (config.AttentionBias)
            {
                yield return (AttnQBias(i), [q]);
                yield return (AttnKBias(i), [kv]);
                yield return (AttnVBias(i), [kv]);
            }
            yield return (AttnOutput(i), [h, q]);
            yield return (FfnNorm(i), [h]);
            yield return (FfnGate(i), [ff, h]);
            yield return (FfnUp(i), [ff, h]);
            yield return (FfnDown(i), [h, ff]);
        }
        yield return (OutputNorm, [h]);
        if (includeOutput) yield return (Output, [v, h]);
    }

    /// <summary>
    /// Maps a Hugging Face Llama/Mistral/Qwen2 tensor name to the canonical one; null for tensors the
    /// runtime never reads (rotary inv_freq buffers); names it does not know pass through unchanged.
    /// </summary>
    public static string? FromHuggingFace(string hfName)
    {
        switch (hfName)
        {
            case "model.embed_tokens.weight": return TokenEmbedding;
            case "model.norm.weight": return OutputNorm;
            case "lm_head.weight": return Output;
        }
        var m = HfLayerName().Match(hfName);
        if (!m.Success) return hfName;
        string layer = m.Groups[1].Value, module = m.Groups[2].Value, kind = m.Groups[3].Value;
        string? canonical = module switch
        {
            "input_layernorm" => "attn_norm",
            "self_attn.q_proj" => "attn_q",
            "self_attn.k_proj" => "attn_k",
            "self_attn.v_proj" => "attn_v",
            "self_attn.o_proj" => "attn_output",
            "post_attention_layernorm" => "ffn_norm",
            "mlp.gate_proj" => "ffn_gate",
            "mlp.up_proj" => "ffn_up",
            "mlp.down_proj" => "ffn_down",
            _ => null,
        };
        if (canonical is null) return module.EndsWith("rotary_emb", StringComparison.Ordinal) ? null : hfName;
        return $"blk.{layer}.{canonical}.{kind}";
    }

    /// <summary>The Hugging Face name of a canonical tensor name (the inverse of <see cref="FromHuggingFace"/>).</summary>
    public static string ToHuggingFace(string canonical)
    {
        switch (canonical)
        {
            case TokenEmbedding: return "model.embed_tokens.weight";
            case OutputNorm: return "model.norm.weight";
            case Output: return "lm_head.weight";
        }
        var m = BlockName().Match(canonical);
        if (!m.Success) return canonical;
        string rest = m.Groups[2].Value;
        int dot = rest.LastIndexOf('.');
        if (dot < 0) return canonical;
        string module = rest[..dot] switch
        {
            "attn_norm" => "input_layernorm",
            "attn_q" => "self_attn.q_proj",
            "attn_k" => "self_attn.k_proj",
            "attn_v" => "self_attn.v_proj",
            "attn_output" => "self_attn.o_proj",
            "ffn_norm" => "post_attention_layernorm",
            "ffn_gate" => "mlp.gate_proj",
            "ffn_up" => "mlp.up_proj",
            "ffn_down" => "mlp.down_proj",
            _ => "",
        };
        return module.Length == 0 ? canonical : $"model.layers.{m.Groups[1].Value}.{module}.{rest[(dot + 1)..]}";
    }

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)\.(weight|bias|inv_freq)$", RegexOptions.CultureInvariant)]
    private static partial Regex HfLayerName();

    [GeneratedRegex(@"^blk\.(\d+)\.(.+)$", RegexOptions.CultureInvariant)]
    private static partial Regex BlockName();

    /// <summary>
    /// Checks that every tensor the config needs is present with the right shape, and that no
    /// tensor would change the model's math if ignored (biases the config has no place for,
    /// layers beyond the count, llama3-style rope frequency factors).
    /// </summary>
    internal static void Validate(LlamaConfig config, IReadOnlyDictionary<string, WeightTensor> tensors, string path,
                                  Func<string, string>? describe = null)
    {
        describe ??= n => $"'{n}'";
        bool needOutput = !config.TieWordEmbeddings || tensors.ContainsKey(Output);
        foreach (var (name, shape) in Expected(config, needOutput))
        {
            if (!tensors.TryGetValue(name, out var tensor))
                throw new ModelFormatException(path, $"missing tensor {describe(name)}, which a {config.Architecture} model with this config needs");
            if (!tensor.Shape.AsSpan().SequenceEqual(shape))
                throw new ModelFormatException(path, $"tensor {describe(name)} has shape [{string.Join(", ", tensor.Shape)}], but the config implies [{string.Join(", ", shape)}]");
        }

        foreach (var name in tensors.Keys)
        {
            if (name == "rope_freqs.weight")
                throw new ModelFormatException(path, $"tensor {describe(name)} (per-dimension RoPE frequency factors, Llama 3.1 rope scaling) is not supported yet");
            var m = BlockName().Match(name);
            if (!m.Success) continue;
            if (!int.TryParse(m.Groups[1].Value, out int layer) || layer >= config.NumLayers)
                throw new ModelFormatException(path, $"tensor {describe(name)} belongs to layer {m.Groups[1].Value}, but the config has {config.NumLayers} layers");
            string rest = m.Groups[2].Value;
            if (rest.EndsWith(".bias", StringComparison.Ordinal) &&
                !(config.AttentionBias && rest is "attn_q.bias" or "attn_k.bias" or "attn_v.bias"))
                throw new ModelFormatException(path, $"tensor {describe(name)} is a bias this runtime does not apply ({(config.AttentionBias ? "only q/k/v biases are supported" : "the config declares no attention bias")})");
        }
    }
}
