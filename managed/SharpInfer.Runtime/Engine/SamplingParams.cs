// SamplingParams.cs: how one request picks its next tokens and when it stops.
namespace SharpInfer.Engine;

public sealed record SamplingParams
{
    /// <summary>0 means greedy (argmax); otherwise logits are divided by it before sampling.</summary>
    public float Temperature { get; init; }
    /// <summary>Keep only the K most likely tokens; 0 disables.</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of tokens whose probability sums to at least P; 1 disables.</summary>
    public float TopP { get; init; } = 1.0f;
    /// <summary>Drop tokens less likely than MinP times the most likely one; 0 disables.</summary>
    public float MinP { get; init; }
    /// <summary>Penalty on tokens already in the prompt or output (>1 discourages them); 1 disables.
    /// Positive logits are divided by it, negative ones multiplied, as most runtimes do.</summary>
    public float RepetitionPenalty { get; init; } = 1.0f;
    /// <summary>Seed of the sampling random stream; null draws one.</summary>
    public ulong? Seed { get; init; }
    /// <summary>Most tokens to generate.</summary>
    public int MaxTokens { get; init; } = 128;
    /// <summary>Generation stops before the first occurrence of any of these strings.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Keep going past end-of-sequence tokens (benchmarks).</summary>
    public bool IgnoreEos { get; init; }

    public static SamplingParams Greedy { get; } = new();

    /// <summary>Throws ArgumentException naming the first out-of-range field.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) throw new ArgumentException($"temperature must be >= 0 (got {Temperature})");
        if (TopK < 0) throw new ArgumentException($"top-k must be >= 0 (got {TopK})");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top-p must be in (0, 1] (got {TopP})");
        if (!(MinP >= 0 && MinP <= 1)) throw new ArgumentException($"min-p must be in [0, 1] (got {MinP})");
        if (!(RepetitionPenalty > 0) || float.IsInfinity(RepetitionPenalty)) throw new ArgumentException($"repetition penalty must be > 0 (got {RepetitionPenalty})");
        if (MaxTokens < 0) throw new ArgumentException($"max tokens must be >= 0 (got {MaxTokens})");
        if (StopStrings.Any(string.IsNullOrEmpty)) throw new ArgumentException("stop strings must not be empty");
    }
}
