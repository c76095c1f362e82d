// SequenceState.cs: the scheduler's view of one request: its tokens (prompt, then generated),
// how many of them already have K/V in the pool, its blocks, and its rank (priority, arrival).
using System.Runtime.InteropServices;

namespace SharpInfer.Engine;

public enum SequenceStatus { Waiting, Running, Finished }

public sealed class SequenceState
{
    private readonly List<int> _tokens;

    public SequenceState(SeqId id, IReadOnlyList<int> promptTokens, int priority = 0, long arrival = 0)
    {
        ArgumentNullException.ThrowIfNull(promptTokens);
        if (promptTokens.Count == 0) throw new ArgumentException("a sequence needs at least one prompt token", nameof(promptTokens));
        Id = id;
        _tokens = [.. promptTokens];
        PromptLength = _tokens.Count;
        Priority = priority;
        Arrival = arrival;
    }

    public SeqId Id { get; }
    /// <summary>Larger is more important: the scheduler serves higher priorities first and
    /// preempts the lowest priority (then the newest) when KV blocks run out.</summary>
    public int Priority { get; }
    /// <summary>Submission order; among equal priorities older sequences rank higher.</summary>
    public long Arrival { get; }

    public int PromptLength { get; }
    /// <summary>Prompt then generated tokens.</summary>
    public IReadOnlyList<int> Tokens => _tokens;
    internal ReadOnlySpan<int> TokenSpan => CollectionsMarshal.AsSpan(_tokens);
    public int GeneratedCount => _tokens.Count - PromptLength;

    /// <summary>Tokens whose K/V is in the pool (positions 0..ComputedTokens-1).</summary>
    public int ComputedTokens { get; internal set; }
    /// <summary>Tokens still to run through the model; 1 when decoding.</summary>
    public int PendingTokens => _tokens.Count - ComputedTokens;

    public BlockTable Blocks { get; } = new();
    public SequenceStatus Status { get; internal set; } = SequenceStatus.Waiting;

    /// <summary>Whether the sequence was ever admitted (its first admission sets CachedPromptTokens).</summary>
    public bool WasAdmitted { get; internal set; }
    /// <summary>Prompt tokens reused from the prefix cache at the first admission.</summary>
    public int CachedPromptTokens { get; internal set; }
    /// <summary>Times the sequence lost its blocks and went back to waiting.</summary>
    public int Preemptions { get; internal set; }

    /// <summary>Appends a sampled token; it runs through the model in the next step.</summary>
    public void Append(int token) => _tokens.Add(token);

    /// <summary>True when <paramref name="other"/> should be preempted before this one.</summary>
    internal bool OutranksForBlocks(SequenceState other) =>
        Priority != other.Priority ? Priority > other.Priority : Arrival < other.Arrival;

    public override string ToString() => $"{Id} ({Status}, {ComputedTokens}/{_tokens.Count} computed, priority {Priority})";
}
