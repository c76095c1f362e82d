// KvBlockManagerTests.cs: block allocation, reference counts, prefix matching over the hash chain,
// LRU eviction of cached blocks, the write guard that replaces copy-on-write, and leak checks.
using SharpInfer.Engine;

namespace SharpInfer.Tests.Engine;

public class KvBlockManagerTests
{
    private static int[] Tokens(int count, int seed = 0) => Enumerable.Range(0, count).Select(i => 10 + (i * 7 + seed) % 90).ToArray();

    private static void AssertPoolFull(KvBlockManager m)
    {
        m.CheckConsistency();
        Assert.Equal(0, m.UsedBlocks);
        Assert.Equal(m.NumBlocks, m.FreeBlocks);
    }

    [Fact]
    public void Reserve_IsAllOrNothing_AndFreeReturnsThePoolToFull()
    {
        var m = new KvBlockManager(numBlocks: 5, blockSize: 4);
        var a = new BlockTable();
        Assert.True(m.TryReserve(a, 9));          // 3 blocks
        Assert.Equal(3, a.Count);
        Assert.Equal(3, m.UsedBlocks);
        var b = new BlockTable();
        Assert.False(m.TryReserve(b, 12));        // needs 3, only 2 free: nothing taken
        Assert.Equal(0, b.Count);
        Assert.Equal(2, m.FreeBlocks);
        Assert.True(m.TryReserve(a, 12));         // same 3 blocks still suffice
        Assert.Equal(3, a.Count);
        m.Free(a);
        Assert.Equal(0, a.Count);
        AssertPoolFull(m);
        Assert.Throws<InvalidOperationException>(() => m.MatchPrefix(Fill(m, 4), Tokens(8)));
    }

    private static BlockTable Fill(KvBlockManager m, int tokens)
    {
        var t = new BlockTable();
        Assert.True(m.TryReserve(t, tokens));
        return t;
    }

    [Fact]
    public void FullBlocks_AreReused_ByALaterSequenceWithTheSamePrefix()
    {
        var m = new KvBlockManager(numBlocks: 16, blockSize: 4);
        int[] first = Tokens(10);
        var a = Fill(m, first.Length);
        m.CommitFullBlocks(a, first, computedTokens: 10);  // blocks 0 and 1 are full, block 2 partial
        Assert.Equal(2, m.CachedBlocks);

        int[] second = [.. first.Take(8), 99, 98, 97];
        var b = new BlockTable();
        Assert.Equal(8, m.MatchPrefix(b, second));
        Assert.Equal(a[0], b[0]);
        Assert.Equal(a[1], b[1]);
        Assert.Equal(3 + 0, m.UsedBlocks);         // shared blocks are counted once
        m.Free(a);
        Assert.Equal(2, m.UsedBlocks);             // still referenced by b
        m.Free(b);
        AssertPoolFull(m);
        Assert.Equal(2, m.CachedFreeBlocks);       // freed full blocks stay cached
    }

    [Fact]
    public void Match_AlwaysLeavesOneTokenToCompute()
    {
        var m = new KvBlockManager(numBlocks: 8, blockSize: 4);
        int[] tokens = Tokens(8);
        var a = Fill(m, 8);
        m.CommitFullBlocks(a, tokens, 8);
        m.Free(a);
        var b = new BlockTable();
        Assert.Equal(4, m.MatchPrefix(b, tokens));  // not 8: the last token's logits are needed
        m.Free(b);
        var c = new BlockTable();
        Assert.Equal(8, m.MatchPrefix(c, [.. tokens, 5]));
        m.Free(c);
        AssertPoolFull(m);
    }

    [Fact]
    public void HashChain_DependsOnTheWholePrefix()
    {
        var m = new KvBlockManager(numBlocks: 8, blockSize: 4);
        int[] x = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        var a = Fill(m, x.Length);
        m.CommitFullBlocks(a, x, x.Length);
        // Same second block, different first block: no hit at all.
        int[] y = [0, 2, 3, 4, 5, 6, 7, 8, 9];
        var b = new BlockTable();
        Assert.Equal(0, m.MatchPrefix(b, y));
        Assert.NotEqual(KvBlockManager.BlockHash(default, [1, 2, 3, 4]), KvBlockManager.BlockHash(default, [0, 2, 3, 4]));
        Assert.NotEqual(KvBlockManager.BlockHash(1, [5, 6, 7, 8]), KvBlockManager.BlockHash(2, [5, 6, 7, 8]));
        m.Free(a);
        m.Free(b);
        AssertPoolFull(m);
    }

    [Fact]
    public void CachedBlocks_AreEvictedLeastRecentlyUsedFirst_OnlyWhenNeeded()
    {
        var m = new KvBlockManager(numBlocks: 4, blockSize: 2);
        int[] p = [1, 2, 3, 4, 9], q = [5, 6, 7, 8, 9];
        var a = Fill(m, 4);
        m.CommitFullBlocks(a, p, 4);
        m.Free(a);                                 // p's 2 blocks cached
        var b = Fill(m, 4);
        m.CommitFullBlocks(b, q, 4);
        m.Free(b);                                 // q's 2 blocks cached, more recently
        Assert.Equal(4, m.CachedFreeBlocks);
        Assert.Equal(0, m.Evictions);

        var c = Fill(m, 2);                        // evicts one block: p's last block first
        Assert.Equal(1, m.Evictions);
        var probe = new BlockTable();
        Assert.Equal(2, m.MatchPrefix(probe, p));  // p keeps its first block only
        m.Free(probe);
        var probe2 = new BlockTable();
        Assert.Equal(4, m.MatchPrefix(probe2, q)); // q is intact
        m.Free(probe2);
        m.Free(c);
        AssertPoolFull(m);
        m.ClearPrefixCache();
        Assert.Equal(0, m.CachedBlocks);
        AssertPoolFull(m);
    }

    [Fact]
    public void SharedOrCachedBlocks_AreNeverWritable()
    {
        var m = new KvBlockManager(numBlocks: 8, blockSize: 4);
        int[] tokens = Tokens(9);
        var a = Fill(m, 9);
        m.CheckWritable(a, 8);
        m.CommitFullBlocks(a, tokens, 8);
        Assert.Throws<InvalidOperationException>(() => m.CheckWritable(a, 3));  // a cached (immutable) block
        m.CheckWritable(a, 8);                                                  // the private tail block
        var b = new BlockTable();
        m.MatchPrefix(b, tokens);
        Assert.True(m.TryReserve(b, 9));
        m.CheckWritable(b, 8);
        Assert.NotEqual(a[2], b[2]);
        m.Free(a);
        m.Free(b);
        AssertPoolFull(m);
    }

    [Fact]
    public void DuplicateContent_ComputedTwice_StaysPrivate_AndIsFreed()
    {
        var m = new KvBlockManager(numBlocks: 8, blockSize: 4);
        int[] tokens = Tokens(5);
        var a = Fill(m, 5);
        var b = Fill(m, 5);
        m.CommitFullBlocks(a, tokens, 5);
        m.CommitFullBlocks(b, tokens, 5);  // same prefix computed at once: only a's block is indexed
        Assert.Equal(1, m.CachedBlocks);
        m.Free(b);
        m.Free(a);
        AssertPoolFull(m);
        Assert.Equal(1, m.CachedFreeBlocks);
    }

    [Fact]
    public void PrefixCachingOff_NeverMatches()
    {
        var m = new KvBlockManager(numBlocks: 8, blockSize: 4, enablePrefixCaching: false);
        int[] tokens = Tokens(9);
        var a = Fill(m, 9);
        m.CommitFullBlocks(a, tokens, 9);
        m.Free(a);
        var b = new BlockTable();
        Assert.Equal(0, m.MatchPrefix(b, tokens));
        Assert.Equal(0, m.CachedBlocks);
        AssertPoolFull(m);
    }
}
