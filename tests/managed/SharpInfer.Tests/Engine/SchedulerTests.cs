// SchedulerTests.cs: what a step holds (decode rows first, then prefill chunks, under the token
// budget), chunked prefill, prefix reuse at admission, and recompute preemption by rank.
using SharpInfer.Engine;

namespace SharpInfer.Tests.Engine;

public class SchedulerTests
{
    private static SequenceState Seq(int id, int promptLength, int priority = 0, int offset = 0) =>
        new(new SeqId(id), Enumerable.Range(0, promptLength).Select(i => 10 + (i + offset) % 50).ToArray(), priority, arrival: id);

    /// <summary>Runs a step as the engine would: completes it and "samples" token 7 where logits were produced.</summary>
    private static ScheduledStep Step(Scheduler s)
    {
        var step = s.Schedule();
        s.Complete(step);
        foreach (var c in step.Chunks)
            if (c.NeedsSample) c.Sequence.Append(7);
        return step;
    }

    [Fact]
    public void LongPrompt_IsPrefilledInChunks_ThenDecodes()
    {
        var s = new Scheduler(new KvBlockManager(64, 4), maxBatchTokens: 8);
        var a = Seq(1, 20);
        s.Add(a);
        var sizes = new List<int>();
        for (int i = 0; i < 3; i++)
        {
            var step = Step(s);
            Assert.Single(step.Chunks);
            sizes.Add(step.Chunks[0].Count);
            Assert.Equal(i == 2, step.Chunks[0].NeedsSample);
        }
        Assert.Equal([8, 8, 4], sizes);
        Assert.Equal(20, a.ComputedTokens);
        var decode = Step(s);
        Assert.Equal(new ScheduledChunk(a, 20, 1, 0), decode.Chunks[0]);
        Assert.Equal(22, a.Tokens.Count);
    }

    [Fact]
    public void DecodeRowsComeFirst_ThenPrefill_WithinTheBudget()
    {
        var s = new Scheduler(new KvBlockManager(64, 4), maxBatchTokens: 6);
        var a = Seq(1, 3);
        var b = Seq(2, 3, offset: 1);
        s.Add(a);
        s.Add(b);
        var first = Step(s);
        Assert.Equal([3, 3], first.Chunks.Select(c => c.Count));
        var c = Seq(3, 10, offset: 2);
        s.Add(c);
        var second = Step(s);
        // Two decode rows, then 4 of c's 10 prompt tokens (the budget is 6).
        Assert.Equal([(1, 1), (2, 1), (3, 4)], second.Chunks.Select(x => (x.Sequence.Id.Value, x.Count)));
        Assert.Equal([0, 1, -1], second.Chunks.Select(x => x.LogitRow));
        Assert.Equal(6, second.TokenCount);
        Assert.Equal(2, second.Plan.LogitRowCount);
    }

    [Fact]
    public void Admission_ReusesCachedPrefixBlocks()
    {
        var blocks = new KvBlockManager(64, 4);
        var s = new Scheduler(blocks, maxBatchTokens: 64);
        var a = Seq(1, 13);
        s.Add(a);
        Step(s);
        s.Remove(a);
        var b = Seq(2, 13);  // the same prompt
        s.Add(b);
        var step = Step(s);
        Assert.Equal(12, b.CachedPromptTokens);
        Assert.Equal(new ScheduledChunk(b, 12, 1, 0), step.Chunks[0]);
        Assert.Equal(13 + 1, s.PromptTokensComputed);
        Assert.Equal(12, s.PromptTokensCached);
        Assert.Equal(12, s.PrefixHitTokens);
        s.Remove(b);
        blocks.CheckConsistency();
        Assert.Equal(0, blocks.UsedBlocks);
    }

    [Fact]
    public void OutOfBlocks_PreemptsTheLowestPriorityNewest_WhichResumesWithItsTokens()
    {
        var blocks = new KvBlockManager(6, 4);
        var s = new Scheduler(blocks, maxBatchTokens: 64);
        var high = Seq(1, 8, priority: 1);
        var older = Seq(2, 7, offset: 3);
        var newer = Seq(3, 7, offset: 5);
        s.Add(high);
        s.Add(older);
        s.Add(newer);
        Step(s);                                   // 2 + 2 + 2 blocks: the pool is full
        Assert.Equal(0, blocks.FreeBlocks);
        Assert.Equal(3, s.Running.Count);
        var step = Step(s);                        // high needs a third block: newer is preempted
        Assert.Equal([newer], step.Preempted);
        Assert.Equal(SequenceStatus.Waiting, newer.Status);
        Assert.Equal(0, newer.ComputedTokens);
        Assert.Equal(8, newer.Tokens.Count);       // prompt and the generated token are kept
        Assert.Equal(1, s.Preemptions);
        Assert.DoesNotContain(step.Chunks, c => c.Sequence == newer);

        s.Remove(high);                            // room again: newer is recomputed from its tokens
        var resume = Step(s);
        var chunk = Assert.Single(resume.Chunks, c => c.Sequence == newer);
        Assert.Equal(4, chunk.Start);              // its first full block was still cached
        Assert.Equal(4, chunk.Count);
        Assert.True(chunk.NeedsSample);
        s.Remove(older);
        s.Remove(newer);
        blocks.CheckConsistency();
        Assert.Equal(0, blocks.UsedBlocks);
    }

    [Fact]
    public void WhenTwoDecodersNeedABlock_TheLowerRankedGivesWay()
    {
        var blocks = new KvBlockManager(4, 4);
        var s = new Scheduler(blocks, maxBatchTokens: 64);
        var a = Seq(1, 8);
        var b = Seq(2, 8, priority: 5, offset: 1);
        s.Add(a);
        s.Add(b);
        Step(s);
        var step = Step(s);  // both need a third block; a has the lower priority
        Assert.Equal([a], step.Preempted);
        Assert.Equal([b], step.Chunks.Select(c => c.Sequence));
        s.Remove(a);
        s.Remove(b);
        blocks.CheckConsistency();
        Assert.Equal(0, blocks.UsedBlocks);
    }

    [Fact]
    public void AWaitingPrompt_TakesTheBlocksThatAreFree_AsAChunk()
    {
        var blocks = new KvBlockManager(4, 4);
        var s = new Scheduler(blocks, maxBatchTokens: 64);
        var a = Seq(1, 12);
        var b = Seq(2, 8, offset: 1);
        var c = Seq(3, 2, offset: 2);
        s.Add(a);
        s.Add(b);
        s.Add(c);
        var step = Step(s);  // a takes 3 blocks, b the last one for half its prompt; c waits
        Assert.Equal([(1, 12), (2, 4)], step.Chunks.Select(x => (x.Sequence.Id.Value, x.Count)));
        Assert.Equal([c], s.Waiting);
        Assert.Equal(0, s.Preemptions);
        s.Remove(a);
        var next = Step(s);
        Assert.Equal([(2, 4), (3, 2)], next.Chunks.Select(x => (x.Sequence.Id.Value, x.Count)));
        Assert.True(next.Chunks.All(x => x.NeedsSample));
    }

    [Fact]
    public void AHigherPriorityArrival_PreemptsLowerPriorityRunners()
    {
        var blocks = new KvBlockManager(4, 4);
        var s = new Scheduler(blocks, maxBatchTokens: 64);
        var low = Seq(1, 15);
        s.Add(low);
        Step(s);                                   // 4 blocks: the pool is full, low can still decode
        var urgent = Seq(2, 5, priority: 3);
        s.Add(urgent);
        var step = Step(s);
        Assert.Equal([low], step.Preempted);
        Assert.Contains(step.Chunks, x => x.Sequence == urgent);
        Assert.DoesNotContain(step.Chunks, x => x.Sequence == low);
    }
}
