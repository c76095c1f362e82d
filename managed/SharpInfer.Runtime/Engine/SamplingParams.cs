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
    /// <summary>Subtracted from a token's logit once per time it was already generated (OpenAI's
    /// frequency_penalty; counts output tokens only); 0 disables. Range [-2, 2].</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>Subtracted from the logit of every token already generated at least once (OpenAI's
    /// presence_penalty; output tokens only); 0 disables. Range [-2, 2].</summary>
    public float PresencePenalty { get; init; }
    /// <summary>Added to the logits of these token ids before sampling (-infinity bans a token).</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }
    /// <summary>Report the log-probability of every generated token (of the model's raw
    /// distribution, before penalties, bias and temperature).</summary>
    public bool Logprobs { get; init; }
    /// <summary>Also report this many most likely alternatives per token (0-20; implies Logprobs).</summary>
    public int TopLogprobs { get; init; }
    /// <summary>Seed of the sampling random stream; null draws one.</summary>
    public ulong? Seed { get; init; }
    /// <summary>Most tokens to generate.</summary>
    public int MaxTokens { get; init; } = 128;
    /// <summary>Generation stops before the first occurrence of any of these strings.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Keep going past end-of-sequence tokens (benchmarks).</summary>
    public bool IgnoreEos { get; init; }

    public static SamplingParams Greedy { get; } = new();

    /// <summary>Most alternatives <see cref="TopLogprobs"/> may ask for.</summary>
    public const int MaxTopLogprobs = 20;

    /// <summary>Whether each token's log-probability is reported.</summary>
    public bool WantsLogprobs => Logprobs || TopLogprobs > 0;

    /// <summary>Throws ArgumentException naming the first out-of-range field.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) throw new ArgumentException($"temperature must be >= 0 (got {Temperature})");
        if (TopK < 0) throw new ArgumentException($"top-k must be >= 0 (got {TopK})");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top-p must be in (0, 1] (got {TopP})");
        if (!(MinP >= 0 && MinP <= 1)) throw new ArgumentException($"min-p must be in [0, 1] (got {MinP})");
        if (!(RepetitionPenalty > 0) || float.IsInfinity(RepetitionPenalty)) throw new ArgumentException($"repetition penalty must be > 0 (got {RepetitionPenalty})");
        if (!(FrequencyPenalty >= -2 && FrequencyPenalty <= 2)) throw new ArgumentException($"frequency penalty must be in [-2, 2] (got {FrequencyPenalty})");
        if (!(PresencePenalty >= -2 && PresencePenalty <= 2)) throw new ArgumentException($"presence penalty must be in [-2, 2] (got {PresencePenalty})");
        if (LogitBias is not null)
            foreach (var (id, bias) in LogitBias)
            {
                if (id < 0) throw new ArgumentException($"logit bias names token id {id}, which is negative");
                if (float.IsNaN(bias) || float.IsPositiveInfinity(bias)) throw new ArgumentException($"logit bias for token {id} must be a number or -infinity (got {bias})");
            }
        if (TopLogprobs < 0 || TopLogprobs > MaxTopLogprobs) throw new ArgumentException($"top logprobs must be in [0, {MaxTopLogprobs}] (got {TopLogprobs})");
        if (MaxTokens < 0) throw new ArgumentException($"max tokens must be >= 0 (got {MaxTokens})");
        if (StopStrings is null || StopStrings.Any(string.IsNullOrEmpty)) throw new ArgumentException("stop strings must not be empty");
    }
}
