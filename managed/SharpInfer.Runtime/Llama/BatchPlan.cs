// BatchPlan.cs: one forward step over many sequences, in the form the kernels take:
// flattened token ids and positions, query offsets (cu_seqlens), context lengths, block
// tables, the KV slot of every new token, and which rows need logits.
namespace SharpInfer.Llama;

public sealed class BatchPlan
{
    private readonly List<int> _tokens = [], _positions = [], _slots = [], _logitRows = [];
    private readonly List<int> _cuSeqlens = [0], _contextLens = [];
    private readonly List<int[]> _blockTables = [];

    public int BlockSize { get; }
    public int TokenCount => _tokens.Count;
    public int SequenceCount => _contextLens.Count;
    public int LogitRowCount => _logitRows.Count;
    public int MaxQueryLength { get; private set; }
    public int MaxContextLength { get; private set; }
    public int MaxBlocksPerSequence { get; private set; } = 1;

    public BatchPlan(int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        BlockSize = blockSize;
    }

    /// <summary>
    /// Adds <paramref name="tokens"/> of one sequence at positions startPosition.. (the cache
    /// already holds positions below startPosition). <paramref name="blockTable"/> must cover
    /// every position up to the last new one. Logits are produced for every new token when
    /// <paramref name="allLogits"/>, else for the last one only when <paramref name="lastLogits"/>.
    /// </summary>
    public void AddSequence(ReadOnlySpan<int> tokens, int startPosition, int[] blockTable, bool lastLogits = true, bool allLogits = false)
    {
        if (tokens.IsEmpty) throw new ArgumentException("a sequence in a batch needs at least one new token", nameof(tokens));
        int contextLength = startPosition + tokens.Length;
        if ((long)blockTable.Length * BlockSize < contextLength)
            throw new ArgumentException($"a block table of {blockTable.Length} blocks cannot hold {contextLength} tokens");
        for (int i = 0; i < tokens.Length; i++)
        {
            int position = startPosition + i;
            if (allLogits || (lastLogits && i == tokens.Length - 1)) _logitRows.Add(_tokens.Count);
            _tokens.Add(tokens[i]);
            _positions.Add(position);
            _slots.Add(blockTable[position / BlockSize] * BlockSize + position % BlockSize);
        }
        _cuSeqlens.Add(_tokens.Count);
        _contextLens.Add(contextLength);
        _blockTables.Add(blockTable);
        MaxQueryLength = Math.Max(MaxQueryLength, tokens.Length);
        MaxContextLength = Math.Max(MaxContextLength, contextLength);
        MaxBlocksPerSequence = Math.Max(MaxBlocksPerSequence, (contextLength + BlockSize - 1) / BlockSize);
    }

    public void Clear()
    {
        _tokens.Clear(); _positions.Clear(); _slots.Clear(); _logitRows.Clear();
        _cuSeqlens.Clear(); _cuSeqlens.Add(0); _contextLens.Clear(); _blockTables.Clear();
        MaxQueryLength = MaxContextLength = 0;
        MaxBlocksPerSequence = 1;
    }

    internal IReadOnlyList<int> Tokens => _tokens;
    internal IReadOnlyList<int> Positions => _positions;
    internal IReadOnlyList<int> Slots => _slots;
    internal IReadOnlyList<int> LogitRows => _logitRows;
    internal IReadOnlyList<int> CuSeqlens => _cuSeqlens;
    internal IReadOnlyList<int> ContextLengths => _contextLens;

    /// <summary>Block tables padded to MaxBlocksPerSequence (padding: -1, never read).</summary>
    internal void FillBlockTables(Span<int> destination)
    {
        destination.Fill(-1);
        for (int s = 0; s < _blockTables.Count; s++)
        {
            int used = Math.Min(_blockTables[s].Length, MaxBlocksPerSequence);
            _blockTables[s].AsSpan(0, used).CopyTo(destination.Slice(s * MaxBlocksPerSequence, used));
        }
    }
}
