// Scheduler.cs: decides what one engine step computes. Under a token budget it takes one decode
// token from every running sequence first, then prefill chunks (running prefills, then waiting
// sequences in rank order, reusing cached prefix blocks), so a long prompt never stalls decode.
// When KV blocks run out it preempts by recompute: the lowest-priority, newest sequence loses its
// blocks and goes back to waiting with its prompt and generated tokens, to be recomputed later.
using SharpInfer.Llama;

namespace SharpInfer.Engine;

/// <summary>One sequence's part of a step: tokens [Start, Start + Count) of its Tokens.
/// LogitRow is its row in the step's logits (the last token's), or -1 while mid-prefill.</summary>
public readonly record struct ScheduledChunk(SequenceState Sequence, int Start, int Count, int LogitRow)
{
    public bool NeedsSample => LogitRow >= 0;
}

/// <summary>The outcome of <see cref="Scheduler.Schedule"/>: the batch plan and what it holds.</summary>
public sealed class ScheduledStep
{
    private readonly List<ScheduledChunk> _chunks = [];
    private readonly List<SequenceState> _preempted = [];

    internal ScheduledStep(int blockSize) => Plan = new BatchPlan(blockSize);

    public BatchPlan Plan { get; }
    /// <summary>In plan order: decode rows first, then prefill chunks.</summary>
    public IReadOnlyList<ScheduledChunk> Chunks => _chunks;
    /// <summary>Sequences that lost their blocks while this step was planned.</summary>
    public IReadOnlyList<SequenceState> Preempted => _preempted;
    public int TokenCount => Plan.TokenCount;
    public bool IsEmpty => _chunks.Count == 0;

    internal List<ScheduledChunk> MutableChunks => _chunks;
    internal List<SequenceState> MutablePreempted => _preempted;

    internal void Reset()
    {
        _chunks.Clear();
        _preempted.Clear();
        Plan.Clear();
    }
}

/// <summary>Waiting and running sequences over one <see cref="KvBlockManager"/>. Not thread-safe:
/// the engine's step loop is its only user.</summary>
public sealed class Scheduler
{
    private readonly List<SequenceState> _waiting = [], _running = [];
    private readonly List<SequenceState> _order = [];
    private readonly HashSet<SequenceState> _scheduled = [], _preemptedThisStep = [];
    private readonly ScheduledStep _step;
    private int _budget;

    public Scheduler(KvBlockManager blocks, int maxBatchTokens, int maxRunningSequences = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRunningSequences, 1);
        Blocks = blocks;
        MaxBatchTokens = maxBatchTokens;
        MaxRunningSequences = maxRunningSequences;
        _step = new ScheduledStep(blocks.BlockSize);
    }

    public KvBlockManager Blocks { get; }
    /// <summary>Most tokens one step computes (at most the model's MaxBatch).</summary>
    public int MaxBatchTokens { get; }
    public int MaxRunningSequences { get; }

    public IReadOnlyList<SequenceState> Running => _running;
    public IReadOnlyList<SequenceState> Waiting => _waiting;
    public bool HasWork => _running.Count + _waiting.Count > 0;

    public long Preemptions { get; private set; }
    /// <summary>Tokens looked up in the prefix cache at admissions, and how many were found.</summary>
    public long PrefixQueryTokens { get; private set; }
    public long PrefixHitTokens { get; private set; }
    /// <summary>Prompt positions run through the model (recomputation after preemption included),
    /// and prompt positions reused from the prefix cache instead.</summary>
    public long PromptTokensComputed { get; private set; }
    public long PromptTokensCached { get; private set; }

    /// <summary>Queues a new sequence.</summary>
    public void Add(SequenceState sequence)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        if (sequence.Status != SequenceStatus.Waiting || sequence.Blocks.Count != 0 || _waiting.Contains(sequence))
            throw new ArgumentException($"{sequence.Id} is not a new sequence", nameof(sequence));
        _waiting.Add(sequence);
    }

    /// <summary>Ends a sequence (finished or cancelled): its blocks are released now.</summary>
    public void Remove(SequenceState sequence)
    {
        if (sequence.Status == SequenceStatus.Finished) return;
        if (!_running.Remove(sequence)) _waiting.Remove(sequence);
        Blocks.Free(sequence.Blocks);
        sequence.Status = SequenceStatus.Finished;
    }

    /// <summary>Plans the next step. The returned object is reused by the next call.</summary>
    public ScheduledStep Schedule()
    {
        _step.Reset();
        _scheduled.Clear();
        _preemptedThisStep.Clear();
        _budget = MaxBatchTokens;
        _running.Sort(CompareRank);
        _waiting.Sort(CompareRank);

        // 1. One decode token for every running sequence that has finished its prefill.
        _order.Clear();
        _order.AddRange(_running);
        foreach (var s in _order)
        {
            if (_budget == 0) break;
            if (s.Status == SequenceStatus.Running && s.PendingTokens == 1 && !TrySchedule(s, admitting: false)) Preempt(s);
        }
        // 2. Prefill chunks of running sequences (a long prompt runs over several steps).
        foreach (var s in _order)
        {
            if (_budget == 0) break;
            if (s.Status == SequenceStatus.Running && s.PendingTokens > 1 && !_scheduled.Contains(s) &&
                !TrySchedule(s, admitting: false))
                Preempt(s);
        }
        // 3. Admit waiting sequences in rank order until the budget, the blocks or the slots run out.
        _order.Clear();
        _order.AddRange(_waiting);
        foreach (var s in _order)
        {
            if (_budget == 0 || _running.Count >= MaxRunningSequences) break;
            if (_preemptedThisStep.Contains(s)) continue;
            if (!Admit(s)) break;  // first come, first served: nobody overtakes a sequence that does not fit
        }

        int logitRow = 0;
        var chunks = _step.MutableChunks;
        for (int i = 0; i < chunks.Count; i++)
        {
            var c = chunks[i];
            bool last = c.Start + c.Count == c.Sequence.Tokens.Count;
            _step.Plan.AddSequence(c.Sequence.TokenSpan.Slice(c.Start, c.Count), c.Start, c.Sequence.Blocks.AsArray(), lastLogits: last);
            chunks[i] = c with { LogitRow = last ? logitRow++ : -1 };
        }
        return _step;
    }

    /// <summary>Records that <paramref name="step"/> ran: its tokens' K/V are now in the pool, and
    /// blocks that became full join the prefix cache.</summary>
    public void Complete(ScheduledStep step)
    {
        foreach (var c in step.Chunks)
        {
            var s = c.Sequence;
            if (s.Status != SequenceStatus.Running || s.ComputedTokens != c.Start)
                throw new InvalidOperationException($"{s.Id} changed between planning and completing a step");
            s.ComputedTokens += c.Count;
            PromptTokensComputed += Math.Max(0, Math.Min(c.Start + c.Count, s.PromptLength) - c.Start);
            Blocks.CommitFullBlocks(s.Blocks, s.TokenSpan, s.ComputedTokens);
        }
    }

    private bool Admit(SequenceState s)
    {
        int matched = Blocks.MatchPrefix(s.Blocks, s.TokenSpan);
        s.ComputedTokens = matched;
        if (!TrySchedule(s, admitting: true))
        {
            Blocks.Free(s.Blocks);
            s.ComputedTokens = 0;
            return false;
        }
        _waiting.Remove(s);
        _running.Add(s);
        s.Status = SequenceStatus.Running;
        PrefixQueryTokens += s.Tokens.Count;
        PrefixHitTokens += matched;
        PromptTokensCached += Math.Min(matched, s.PromptLength);
        if (!s.WasAdmitted)
        {
            s.WasAdmitted = true;
            s.CachedPromptTokens = Math.Min(matched, s.PromptLength);
        }
        return true;
    }

    /// <summary>
    /// Schedules as many of <paramref name="s"/>'s pending tokens as the budget allows, reserving
    /// their blocks. Lower-ranked running sequences are preempted to make room (for a waiting
    /// sequence only those of strictly lower priority); failing that a prefill takes a smaller
    /// chunk. False when not even one token fits.
    /// </summary>
    private bool TrySchedule(SequenceState s, bool admitting)
    {
        int want = Math.Min(s.PendingTokens, _budget);
        while (true)
        {
            long fit = (long)(s.Blocks.Count + Blocks.FreeBlocks) * Blocks.BlockSize - s.ComputedTokens;
            if (fit >= want) break;
            var victim = LowestRankedRunning(except: s);
            if (victim is not null && (admitting ? s.Priority > victim.Priority : s.OutranksForBlocks(victim)))
            {
                Preempt(victim);
                want = Math.Min(s.PendingTokens, _budget);
                continue;
            }
            if (fit <= 0) return false;
            want = (int)fit;
            break;
        }
        if (!Blocks.TryReserve(s.Blocks, s.ComputedTokens + want))
            throw new InvalidOperationException("KV blocks counted as free could not be reserved");
        Blocks.CheckWritable(s.Blocks, s.ComputedTokens);
        _step.MutableChunks.Add(new ScheduledChunk(s, s.ComputedTokens, want, -1));
        _scheduled.Add(s);
        _budget -= want;
        return true;
    }

    /// <summary>Recompute preemption: free the blocks, forget the computed K/V, wait again.</summary>
    private void Preempt(SequenceState s)
    {
        if (_scheduled.Remove(s))
        {
            var chunks = _step.MutableChunks;
            int index = chunks.FindIndex(c => c.Sequence == s);
            _budget += chunks[index].Count;
            chunks.RemoveAt(index);
        }
        Blocks.Free(s.Blocks);
        s.ComputedTokens = 0;
        s.Status = SequenceStatus.Waiting;
        s.Preemptions++;
        Preemptions++;
        _running.Remove(s);
        _waiting.Add(s);
        _preemptedThisStep.Add(s);
        _step.MutablePreempted.Add(s);
    }

    private SequenceState? LowestRankedRunning(SequenceState except)
    {
        SequenceState? lowest = null;
        foreach (var r in _running)
            if (r != except && (lowest is null || lowest.OutranksForBlocks(r))) lowest = r;
        return lowest;
    }

    /// <summary>Higher priority first, then older, then lower id.</summary>
    private static int CompareRank(SequenceState a, SequenceState b) =>
        a.Priority != b.Priority ? b.Priority.CompareTo(a.Priority)
        : a.Arrival != b.Arrival ? a.Arrival.CompareTo(b.Arrival)
        : a.Id.Value.CompareTo(b.Id.Value);
}
