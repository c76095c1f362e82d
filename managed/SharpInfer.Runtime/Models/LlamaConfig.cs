// LlamaConfig.cs: the hyper-parameters of a Llama-family model (llama, mistral, qwen2) as read
// from GGUF metadata or a Hugging Face config.json, with a validity check.
namespace SharpInfer.Models;

/// <summary>Which elements RoPE rotates together. Values equal the native <c>si_rope_layout</c>.</summary>
public enum RopeLayout
{
    /// <summary>(x[2i], x[2i+1]): Meta/llama2.c order, how GGUF llama/mistral store q/k.</summary>
    AdjacentPairs = 0,

    /// <summary>(x[i], x[i + head_dim/2]): Hugging Face rotate_half order (and GGUF qwen2).</summary>
    RotateHalf = 1,
}

/// <summary>Hyper-parameters of a Llama-family decoder.</summary>
public sealed record LlamaConfig
{
    /// <summary>The architectures this runtime can run.</summary>
    public static IReadOnlyList<string> SupportedArchitectures { get; } = ["llama", "mistral", "qwen2"];

    /// <summary>Normalized architecture name: "llama", "mistral" or "qwen2".</summary>
    public string Architecture { get; init; } = "llama";

    /// <summary>Rows of the embedding / LM head (may exceed the tokenizer's vocabulary).</summary>
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }

    /// <summary>Longest sequence the model was configured for (context_length / max_position_embeddings).</summary>
    public required int MaxContext { get; init; }

    public float RopeTheta { get; init; } = 10000f;

    /// <summary>
    /// Multiplier applied to positions before RoPE (llama.cpp's and the native op's freq_scale).
    /// Linear RoPE scaling by a factor f (HF <c>rope_scaling.factor</c>, GGUF <c>rope.scaling.factor</c>)
    /// gives 1/f. 1 means no scaling.
    /// </summary>
    public float RopeScale { get; init; } = 1f;

    public float RmsNormEps { get; init; } = 1e-5f;

    /// <summary>The LM head shares the token embedding; a checkpoint may then lack <c>output.weight</c>.</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>q/k/v projections carry biases (Qwen2 style).</summary>
    public bool AttentionBias { get; init; }

    public RopeLayout RopeLayout { get; init; } = RopeLayout.AdjacentPairs;

    public int BosTokenId { get; init; } = 1;

    /// <summary>Every id that ends generation (Llama 3 has several).</summary>
    public int[] EosTokenIds { get; init; } = [2];

    /// <summary>Query heads per KV head.</summary>
    public int GqaGroupSize => NumKvHeads > 0 ? NumHeads / NumKvHeads : 0;

    /// <summary>
    /// Throws <see cref="ModelFormatException"/> when the values cannot describe a runnable model.
    /// <paramref name="sourcePath"/> goes into the message.
    /// </summary>
    public void Validate(string? sourcePath = null)
    {
        void Fail(string what) => throw new ModelFormatException(sourcePath, $"invalid model config: {what}");

        if (!SupportedArchitectures.Contains(Architecture))
            throw new ModelFormatException(sourcePath, UnsupportedArchitectureMessage(Architecture));
        if (VocabSize <= 0) Fail($"vocab size must be positive (got {VocabSize})");
        if (HiddenSize <= 0) Fail($"hidden size must be positive (got {HiddenSize})");
        if (IntermediateSize <= 0) Fail($"intermediate size must be positive (got {IntermediateSize})");
        if (NumLayers <= 0) Fail($"layer count must be positive (got {NumLayers})");
        if (NumHeads <= 0) Fail($"attention head count must be positive (got {NumHeads})");
        if (NumKvHeads <= 0) Fail($"KV head count must be positive (got {NumKvHeads})");
        if (NumHeads % NumKvHeads != 0)
            Fail($"attention head count {NumHeads} is not a multiple of the KV head count {NumKvHeads}");
        if (HeadDim <= 0) Fail($"head dim must be positive (got {HeadDim})");
        if (HeadDim % 2 != 0) Fail($"head dim must be even for RoPE (got {HeadDim})");
        if ((long)NumHeads * HeadDim > int.MaxValue) Fail("heads x head dim overflows");
        if (MaxContext <= 0) Fail($"context length must be positive (got {MaxContext})");
        if (!(RopeTheta > 0) || float.IsInfinity(RopeTheta)) Fail($"rope theta must be positive and finite (got {RopeTheta})");
        if (!(RopeScale > 0) || float.IsInfinity(RopeScale)) Fail($"rope scale must be positive and finite (got {RopeScale})");
        if (!(RmsNormEps > 0) || float.IsInfinity(RmsNormEps)) Fail($"RMSNorm epsilon must be positive and finite (got {RmsNormEps})");
        if (BosTokenId < 0 || BosTokenId >= VocabSize) Fail($"BOS id {BosTokenId} is outside the vocabulary [0, {VocabSize})");
        if (EosTokenIds is null || EosTokenIds.Length == 0) Fail("no EOS token id");
        foreach (int eos in EosTokenIds!)
            if (eos < 0 || eos >= VocabSize) Fail($"EOS id {eos} is outside the vocabulary [0, {VocabSize})");
    }

    internal static string UnsupportedArchitectureMessage(string architecture) =>
        $"unsupported architecture '{architecture}' (supported: {string.Join(", ", SupportedArchitectures)})";

    /// <summary>Field-by-field equality (the compiler's record equality compares the EOS array by reference).</summary>
    public bool Equals(LlamaConfig? other) =>
        other is not null &&
        Architecture == other.Architecture && VocabSize == other.VocabSize && HiddenSize == other.HiddenSize &&
        IntermediateSize == other.IntermediateSize && NumLayers == other.NumLayers && NumHeads == other.NumHeads &&
        NumKvHeads == other.NumKvHeads && HeadDim == other.HeadDim && MaxContext == other.MaxContext &&
        RopeTheta.Equals(other.RopeTheta) && RopeScale.Equals(other.RopeScale) && RmsNormEps.Equals(other.RmsNormEps) &&
        TieWordEmbeddings == other.TieWordEmbeddings && AttentionBias == other.AttentionBias &&
        RopeLayout == other.RopeLayout && BosTokenId == other.BosTokenId &&
        EosTokenIds.AsSpan().SequenceEqual(other.EosTokenIds);

    // ToString lists the EOS ids instead of "System.Int32[]".
    private bool PrintMembers(System.Text.StringBuilder b)
    {
        b.Append($"Architecture = {Architecture}, VocabSize = {VocabSize}, HiddenSize = {HiddenSize}, ");
        b.Append($"IntermediateSize = {IntermediateSize}, NumLayers = {NumLayers}, NumHeads = {NumHeads}, ");
        b.Append($"NumKvHeads = {NumKvHeads}, HeadDim = {HeadDim}, MaxContext = {MaxContext}, RopeTheta = {RopeTheta}, ");
        b.Append($"RopeScale = {RopeScale}, RmsNormEps = {RmsNormEps}, TieWordEmbeddings = {TieWordEmbeddings}, ");
        b.Append($"AttentionBias = {AttentionBias}, RopeLayout = {RopeLayout}, BosTokenId = {BosTokenId}, ");
        b.Append($"EosTokenIds = [{string.Join(", ", EosTokenIds ?? [])}]");
        return true;
    }

    public override int GetHashCode() =>
        HashCode.Combine(Architecture, VocabSize, HiddenSize, NumLayers, NumHeads, NumKvHeads, HeadDim, MaxContext);
}
