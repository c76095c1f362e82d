// FakePagedModel.cs: a stand-in model for engine tests that need no kernels. It "writes K/V" by
// storing each token and its position in the pool slot the plan names, and its "attention"
// reads a sequence's whole context back through the block table, failing on any slot that
// holds the wrong position. The next token is a hash of the context read, so a block-table,
// prefix-cache or preemption bug changes the output or throws.
using SharpInfer.Engine;
using SharpInfer.Llama;
using SharpInfer.Models;
using SharpInfer.Tokenization;

namespace SharpInfer.Tests.Engine;

internal sealed class FakePagedModel : IBatchForward
{
    private readonly int[] _slotToken, _slotPosition;
    private readonly Lock _lock = new();

    public FakePagedModel(int numBlocks, int blockSize = 4, int vocabSize = 300, int maxBatch = 32, int maxContext = 256)
    {
        NumBlocks = numBlocks;
        BlockSize = blockSize;
        VocabSize = vocabSize;
        MaxBatch = maxBatch;
        MaxContext = maxContext;
        _slotToken = new int[numBlocks * blockSize];
        _slotPosition = new int[numBlocks * blockSize];
        Array.Fill(_slotPosition, -1);
    }

    public int VocabSize { get; }
    public int MaxBatch { get; }
    public int MaxContext { get; }
    public int NumBlocks { get; }
    public int BlockSize { get; }

    /// <summary>Tokens run through the model so far (all steps).</summary>
    public long TokensComputed { get; private set; }
    public int Steps { get; private set; }
    public int MaxSequencesInAStep { get; private set; }
    /// <summary>Called at the start of every step (tests use it to slow steps down or fail them).</summary>
    public Action<BatchPlan>? OnStep { get; set; }

    public void Forward(BatchPlan plan, Span<float> logits)
    {
        OnStep?.Invoke(plan);
        lock (_lock)
        {
            if (plan.TokenCount > MaxBatch) throw new InvalidOperationException("step larger than MaxBatch");
            Steps++;
            TokensComputed += plan.TokenCount;
            MaxSequencesInAStep = Math.Max(MaxSequencesInAStep, plan.SequenceCount);
            for (int t = 0; t < plan.TokenCount; t++)
            {
                _slotToken[plan.Slots[t]] = plan.Tokens[t];
                _slotPosition[plan.Slots[t]] = plan.Positions[t];
            }
            int width = plan.MaxBlocksPerSequence;
            int[] tables = new int[plan.SequenceCount * width];
            plan.FillBlockTables(tables);
            int row = 0;
            for (int s = 0; s < plan.SequenceCount; s++)
            {
                for (int t = plan.CuSeqlens[s]; t < plan.CuSeqlens[s + 1]; t++)
                {
                    if (row >= plan.LogitRowCount || plan.LogitRows[row] != t) continue;
                    int position = plan.Positions[t];
                    var context = new int[position + 1];
                    for (int p = 0; p <= position; p++)
                    {
                        int slot = tables[s * width + p / BlockSize] * BlockSize + p % BlockSize;
                        if (_slotPosition[slot] != p)
                            throw new InvalidOperationException($"slot {slot} holds position {_slotPosition[slot]}, expected {p}");
                        context[p] = _slotToken[slot];
                    }
                    WriteLogits(context, logits.Slice(row * VocabSize, VocabSize), VocabSize);
                    row++;
                }
            }
            if (row != plan.LogitRowCount) throw new InvalidOperationException("logit rows out of order");
        }
    }

    /// <summary>The fake's logits after <paramref name="context"/>: a smooth pseudo-random
    /// landscape whose maximum (never an id below 3, so never EOS) depends on every token.</summary>
    public static void WriteLogits(ReadOnlySpan<int> context, Span<float> logits, int vocab)
    {
        ulong h = 1469598103934665603UL;
        foreach (int t in context) h = (h ^ (uint)t) * 1099511628211UL;
        int target = 3 + (int)(h % (ulong)(vocab - 3));
        for (int j = 0; j < vocab; j++)
        {
            ulong z = (h + (ulong)j) * 0x9E3779B97F4A7C15UL;
            logits[j] = (float)((z >> 40) % 1000) / 1000f;  // noise in [0, 1)
        }
        for (int j = 0; j < 3; j++) logits[j] = -5;
        logits[target] = 4;
    }

    /// <summary>What greedy decoding of this fake produces after <paramref name="prompt"/>.</summary>
    public static int[] GreedyOracle(IReadOnlyList<int> prompt, int count, int vocab)
    {
        var tokens = new List<int>(prompt);
        var logits = new float[vocab];
        var output = new int[count];
        for (int i = 0; i < count; i++)
        {
            WriteLogits(tokens.ToArray(), logits, vocab);
            output[i] = Sampler.Argmax(logits);
            tokens.Add(output[i]);
        }
        return output;
    }

    /// <summary>A byte-level tokenizer that needs no model files (EOS id 2).</summary>
    public static TextTokenizer Tokenizer(int vocab = 300) =>
        TextTokenizer.Create(BuiltInVocabulary.Create(vocab), null, "built-in", new TextTokenizer.TokenizerOptions());
}

/// <summary>Collects a whole GenerateAsync stream.</summary>
internal sealed record Completion(int[] Tokens, string Text, FinishReason Reason, GenerationUsage Usage, List<GenerationDelta> Deltas)
{
    public static async Task<Completion> CollectAsync(IAsyncEnumerable<GenerationDelta> stream, CancellationToken cancellationToken = default)
    {
        var deltas = new List<GenerationDelta>();
        await foreach (var d in stream.WithCancellation(cancellationToken)) deltas.Add(d);
        var final = deltas[^1];
        Assert.True(final.IsFinal, "the stream must end with a final item");
        Assert.All(deltas.Take(deltas.Count - 1), d => Assert.False(d.IsFinal));
        return new Completion([.. deltas.SelectMany(d => d.TokenIds)], string.Concat(deltas.Select(d => d.Text)),
            final.FinishReason!.Value, final.Usage!, deltas);
    }
}
