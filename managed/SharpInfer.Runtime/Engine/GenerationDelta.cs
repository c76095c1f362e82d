// GenerationDelta.cs: what InferenceEngine.GenerateAsync streams: one item per generated token
// (its id, the text that became final, its log-probabilities) and a final item with the finish
// reason and the request's usage.
namespace SharpInfer.Engine;

/// <summary>A token and its log-probability.</summary>
public readonly record struct TokenLogprob(int TokenId, float Logprob);

/// <summary>The log-probability of a generated token and the most likely alternatives
/// (descending), all of the model's raw distribution.</summary>
public sealed record TokenLogprobs(int TokenId, float Logprob, IReadOnlyList<TokenLogprob> TopAlternatives);

/// <summary>Token counts of one request.</summary>
public sealed record GenerationUsage(int PromptTokens, int CompletionTokens, int CachedPromptTokens)
{
    public int TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>
/// One streamed item. Token items carry <see cref="TokenIds"/> and the <see cref="Text"/> that
/// became final with them (often empty mid-character or while a possible stop string is held
/// back); the last item has no tokens, any remaining text, <see cref="FinishReason"/> and
/// <see cref="Usage"/>. Concatenating every Text gives the completion's text.
/// </summary>
public sealed record GenerationDelta
{
    public IReadOnlyList<int> TokenIds { get; init; } = [];
    public string Text { get; init; } = "";
    /// <summary>One entry per token in TokenIds when the request asked for logprobs, else null.</summary>
    public IReadOnlyList<TokenLogprobs>? Logprobs { get; init; }
    /// <summary>Set on the final item only.</summary>
    public FinishReason? FinishReason { get; init; }
    /// <summary>Set on the final item only.</summary>
    public GenerationUsage? Usage { get; init; }
    /// <summary>When the engine produced the item (Stopwatch.GetTimestamp(), the end of its step's
    /// forward), so latency can be measured without the consumer's scheduling delays.</summary>
    public long Timestamp { get; init; }

    public bool IsFinal => FinishReason is not null;
}
