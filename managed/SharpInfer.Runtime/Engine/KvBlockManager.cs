// KvBlockManager.cs: which KV blocks of the shared pool each sequence owns. Blocks are
// reference counted; full blocks are content-addressed (a hash chain over their tokens) so a
// later sequence with the same prefix reuses them instead of recomputing; freed full blocks
// stay cached and are evicted least recently used, only when a fresh block is needed.
using System.Buffers.Binary;
using System.Security.Cryptography;

namespace SharpInfer.Engine;

/// <summary>
/// One sequence's blocks, in position order: position p lives in block [p / BlockSize] at slot
/// p % BlockSize. Only <see cref="KvBlockManager"/> changes it.
/// </summary>
public sealed class BlockTable
{
    private readonly List<int> _blocks = [];
    private int[]? _snapshot;

    public int Count => _blocks.Count;
    public BlockId this[int index] => new(_blocks[index]);

    /// <summary>Leading blocks whose chain hash is known (matched from the cache or registered).</summary>
    internal int HashedBlocks { get; set; }
    /// <summary>Chain hash of block HashedBlocks - 1 (the root hash when none).</summary>
    internal UInt128 LastHash { get; set; }

    /// <summary>The block ids as the batch plan takes them; the same array until the table changes.</summary>
    internal int[] AsArray() => _snapshot ??= [.. _blocks];
    internal int RawAt(int index) => _blocks[index];

    internal void Add(int block)
    {
        _blocks.Add(block);
        _snapshot = null;
    }

    internal void Reset()
    {
        _blocks.Clear();
        _snapshot = null;
        HashedBlocks = 0;
        LastHash = default;
    }
}

/// <summary>
/// Allocation and prefix caching over the NumBlocks blocks of a PagedKvCache. Not thread-safe:
/// the engine's step loop is its only user.
/// </summary>
/// <remarks>
/// <para>Prefix caching: block i of a sequence is identified by SHA-256 (truncated to 128 bits)
/// of block i-1's identifier and block i's token ids, so equal identifiers mean equal prefixes.
/// A hit is also checked against the stored parent identifier and tokens, so only a 128-bit
/// collision in the parent chain could ever alias two prefixes.</para>
/// <para>Copy-on-write is not needed: only full blocks are ever shared, and a full block is
/// never written again (a sequence only appends, and a prefix match always leaves at least
/// one token to compute, so the first written position starts a private block).
/// <see cref="CheckWritable"/> enforces that instead of copying.</para>
/// </remarks>
public sealed class KvBlockManager
{
    private readonly int[] _refCount;
    private readonly bool[] _registered;           // the block's identifier is in _byHash
    private readonly UInt128[] _hash;              // identifier of a registered block
    private readonly UInt128[] _parentHash;        // identifier of its parent (collision check)
    private readonly int[]?[] _blockTokens;        // token ids of a registered block (collision check)
    private readonly Dictionary<UInt128, int> _byHash = [];
    private readonly Queue<int> _free = new();     // free blocks holding nothing reusable
    private readonly LinkedList<int> _evictable = new(); // free registered blocks, least recently used first
    private readonly LinkedListNode<int>?[] _evictableNode;

    public KvBlockManager(int numBlocks, int blockSize, bool enablePrefixCaching = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(numBlocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        NumBlocks = numBlocks;
        BlockSize = blockSize;
        PrefixCachingEnabled = enablePrefixCaching;
        _refCount = new int[numBlocks];
        _registered = new bool[numBlocks];
        _hash = new UInt128[numBlocks];
        _parentHash = new UInt128[numBlocks];
        _blockTokens = new int[]?[numBlocks];
        _evictableNode = new LinkedListNode<int>?[numBlocks];
        for (int b = 0; b < numBlocks; b++) _free.Enqueue(b);
    }

    public int NumBlocks { get; }
    public int BlockSize { get; }
    public bool PrefixCachingEnabled { get; }

    /// <summary>Blocks referenced by at least one sequence.</summary>
    public int UsedBlocks { get; private set; }
    /// <summary>Blocks no sequence references (including cached ones, which are reused on demand).</summary>
    public int FreeBlocks => NumBlocks - UsedBlocks;
    /// <summary>Free blocks that still hold a cached prefix (evicted least recently used first).</summary>
    public int CachedFreeBlocks => _evictable.Count;
    /// <summary>Blocks whose contents are registered in the prefix cache (in use or free).</summary>
    public int CachedBlocks => _byHash.Count;
    /// <summary>Cached blocks that were evicted to make room.</summary>
    public long Evictions { get; private set; }

    /// <summary>Blocks that hold <paramref name="tokens"/> tokens.</summary>
    public int BlocksFor(int tokens) => (int)(((long)tokens + BlockSize - 1) / BlockSize);

    /// <summary>Tokens <paramref name="table"/> can hold without new blocks.</summary>
    public int Capacity(BlockTable table) => table.Count * BlockSize;

    /// <summary>
    /// Fills an empty <paramref name="table"/> with the cached blocks of the longest cached prefix
    /// of <paramref name="tokens"/>, leaving at least one token to compute (its logits are needed).
    /// Returns the number of tokens matched (a multiple of BlockSize).
    /// </summary>
    public int MatchPrefix(BlockTable table, ReadOnlySpan<int> tokens)
    {
        if (table.Count != 0) throw new InvalidOperationException("prefix matching needs an empty block table");
        if (!PrefixCachingEnabled || tokens.Length == 0) return 0;
        int maxBlocks = (tokens.Length - 1) / BlockSize;
        UInt128 parent = default;
        for (int i = 0; i < maxBlocks; i++)
        {
            var blockTokens = tokens.Slice(i * BlockSize, BlockSize);
            UInt128 id = BlockHash(parent, blockTokens);
            if (!_byHash.TryGetValue(id, out int block) || _parentHash[block] != parent ||
                !_blockTokens[block].AsSpan().SequenceEqual(blockTokens))
                break;
            Retain(block);
            table.Add(block);
            parent = id;
        }
        table.HashedBlocks = table.Count;
        table.LastHash = parent;
        return table.Count * BlockSize;
    }

    /// <summary>
    /// Adds blocks so <paramref name="table"/> holds <paramref name="tokens"/> tokens, taking
    /// never-cached free blocks first, then evicting the least recently used cached ones. All or
    /// nothing: false (and no change) when too few blocks are free.
    /// </summary>
    public bool TryReserve(BlockTable table, int tokens)
    {
        int needed = BlocksFor(tokens) - table.Count;
        if (needed <= 0) return true;
        if (needed > FreeBlocks) return false;
        for (int i = 0; i < needed; i++) table.Add(AllocateOne());
        return true;
    }

    /// <summary>
    /// Registers the blocks of <paramref name="table"/> that became full now that
    /// <paramref name="computedTokens"/> tokens of <paramref name="tokens"/> are in the cache,
    /// so later sequences can reuse them. A block whose contents are already cached elsewhere
    /// (two sequences computed the same prefix at once) stays private and is freed normally.
    /// </summary>
    public void CommitFullBlocks(BlockTable table, ReadOnlySpan<int> tokens, int computedTokens)
    {
        if (!PrefixCachingEnabled) return;
        int full = Math.Min(Math.Min(computedTokens, tokens.Length) / BlockSize, table.Count);
        while (table.HashedBlocks < full)
        {
            int index = table.HashedBlocks;
            var blockTokens = tokens.Slice(index * BlockSize, BlockSize);
            UInt128 parent = table.LastHash;
            UInt128 id = BlockHash(parent, blockTokens);
            int block = table.RawAt(index);
            if (!_registered[block] && !_byHash.ContainsKey(id))
            {
                _byHash.Add(id, block);
                _registered[block] = true;
                _hash[block] = id;
                _parentHash[block] = parent;
                blockTokens.CopyTo(_blockTokens[block] ??= new int[BlockSize]);
            }
            table.LastHash = id;
            table.HashedBlocks = index + 1;
        }
    }

    /// <summary>Releases every block of <paramref name="table"/> and empties it. Blocks that hold a
    /// cached prefix stay cached; the table's last blocks become the first to be evicted.</summary>
    public void Free(BlockTable table)
    {
        for (int i = table.Count - 1; i >= 0; i--)
        {
            int block = table.RawAt(i);
            if (_refCount[block] <= 0) throw new InvalidOperationException($"{new BlockId(block)} freed twice");
            if (--_refCount[block] > 0) continue;
            UsedBlocks--;
            if (_registered[block]) _evictableNode[block] = _evictable.AddLast(block);
            else _free.Enqueue(block);
        }
        table.Reset();
    }

    /// <summary>Throws unless the block holding <paramref name="position"/> may be written: owned by
    /// this table alone and not a cached (immutable) block. See the remarks on copy-on-write.</summary>
    public void CheckWritable(BlockTable table, int position)
    {
        int block = table.RawAt(position / BlockSize);
        if (_refCount[block] != 1 || _registered[block])
            throw new InvalidOperationException(
                $"{new BlockId(block)} is shared or cached (refs {_refCount[block]}) and would be written at position {position}");
    }

    /// <summary>Drops every cached prefix (free cached blocks become plain free blocks).</summary>
    public void ClearPrefixCache()
    {
        foreach (int block in _evictable)
        {
            _evictableNode[block] = null;
            Unregister(block);
            _free.Enqueue(block);
        }
        _evictable.Clear();
    }

    /// <summary>Throws if the bookkeeping is inconsistent (for tests and leak checks).</summary>
    public void CheckConsistency()
    {
        int used = 0;
        for (int b = 0; b < NumBlocks; b++)
        {
            if (_refCount[b] < 0) throw new InvalidOperationException($"{new BlockId(b)} has a negative count");
            if (_refCount[b] > 0) used++;
            if (_registered[b] && !(_byHash.TryGetValue(_hash[b], out int owner) && owner == b))
                throw new InvalidOperationException($"{new BlockId(b)} is registered but not in the index");
            if ((_evictableNode[b] is not null) != (_refCount[b] == 0 && _registered[b]))
                throw new InvalidOperationException($"{new BlockId(b)} is misplaced in the eviction list");
        }
        if (used != UsedBlocks) throw new InvalidOperationException($"{used} blocks are referenced but {UsedBlocks} are counted");
        if (_free.Count + _evictable.Count != NumBlocks - used)
            throw new InvalidOperationException($"{_free.Count} free + {_evictable.Count} cached != {NumBlocks - used} unreferenced blocks");
        if (_byHash.Count != _registered.Count(r => r))
            throw new InvalidOperationException("the prefix index and the registered blocks differ");
    }

    private void Retain(int block)
    {
        if (_refCount[block]++ > 0) return;
        UsedBlocks++;
        var node = _evictableNode[block] ?? throw new InvalidOperationException($"{new BlockId(block)} was free but not cached");
        _evictable.Remove(node);
        _evictableNode[block] = null;
    }

    private int AllocateOne()
    {
        int block;
        if (_free.Count > 0) block = _free.Dequeue();
        else
        {
            var oldest = _evictable.First ?? throw new InvalidOperationException("no free KV block");
            block = oldest.Value;
            _evictable.RemoveFirst();
            _evictableNode[block] = null;
            Unregister(block);
            Evictions++;
        }
        _refCount[block] = 1;
        UsedBlocks++;
        return block;
    }

    private void Unregister(int block)
    {
        _byHash.Remove(_hash[block]);
        _registered[block] = false;
    }

    /// <summary>Identifier of a full block: SHA-256 of the parent's identifier and the token ids, first 128 bits.</summary>
    internal static UInt128 BlockHash(UInt128 parent, ReadOnlySpan<int> tokens)
    {
        int length = 16 + tokens.Length * sizeof(int);
        Span<byte> input = length <= 1024 ? stackalloc byte[length] : new byte[length];
        BinaryPrimitives.WriteUInt128LittleEndian(input, parent);
        for (int i = 0; i < tokens.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(input[(16 + 4 * i)..], tokens[i]);
        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(input[..length], digest);
        return BinaryPrimitives.ReadUInt128LittleEndian(digest);
    }
}
