// Pruner.cs: chooses which weights of a linear layer to zero. Scores are per weight: magnitude |w|,
// or Wanda's |w| * ||x_j||_2 (the L2 norm of input channel j's activations over calibration text),
// compared within each output row (Wanda's per-output grouping). Patterns: 2:4 keeps the 2
// highest-scoring weights of every 4 consecutive inputs; unstructured keeps the top (1 - S) of
// every row. Ties keep the lower column, so results do not depend on thread timing.
using SharpInfer.Llama;
using SharpInfer.Tokenization;

namespace SharpInfer.Sparsity;

public enum SparsityPattern
{
    /// <summary>2 of every 4 consecutive input columns kept (50%), packed as 2:4.</summary>
    TwoFour,

    /// <summary>Any columns; a fraction S of each row zeroed, packed as a bitmask.</summary>
    Unstructured,
}

public enum PruneMethod
{
    /// <summary>Score = |w|.</summary>
    Magnitude,

    /// <summary>Score = |w| * L2 norm of the input channel's calibration activations (Wanda).</summary>
    Wanda,
}

public static class PruneNames
{
    public static string Name(this SparsityPattern pattern) => pattern == SparsityPattern.TwoFour ? "2:4" : "unstructured";
    public static string Name(this PruneMethod method) => method == PruneMethod.Wanda ? "wanda" : "magnitude";
    public static SparseFormat Format(this SparsityPattern pattern) => pattern == SparsityPattern.TwoFour ? SparseFormat.TwoFour : SparseFormat.Bitmask;
}

public static class Pruner
{
    /// <summary>
    /// Zeroes weights of <paramref name="weight"/> [rows, columns] in place. With
    /// <paramref name="inputNorms"/> (one per column) the score is |w| * norm (Wanda), else |w|.
    /// <paramref name="sparsity"/> is used by the unstructured pattern (2:4 is always 50%).
    /// </summary>
    public static void Prune(Span<float> weight, int rows, int columns, SparsityPattern pattern, double sparsity,
                             ReadOnlySpan<float> inputNorms = default)
    {
        if ((long)rows * columns > weight.Length) throw new ArgumentException($"{weight.Length} values do not fill [{rows}, {columns}]", nameof(weight));
        if (!inputNorms.IsEmpty && inputNorms.Length != columns)
            throw new ArgumentException($"{inputNorms.Length} input norms for {columns} columns", nameof(inputNorms));
        if (pattern == SparsityPattern.Unstructured && !(sparsity >= 0 && sparsity < 1))
            throw new ArgumentOutOfRangeException(nameof(sparsity), sparsity, "sparsity must be in [0, 1)");
        // Spans cannot cross into Parallel.For lambdas: work on arrays.
        float[] w = weight[..(rows * columns)].ToArray();
        float[]? norms = inputNorms.IsEmpty ? null : inputNorms.ToArray();
        int prune = (int)Math.Round(sparsity * columns, MidpointRounding.ToEven);
        Parallel.For(0, rows, () => (new float[columns], new int[columns]), (r, _, scratch) =>
        {
            var row = w.AsSpan(r * columns, columns);
            var (scores, order) = scratch;
            for (int c = 0; c < columns; c++) scores[c] = MathF.Abs(row[c]) * (norms?[c] ?? 1f);
            if (pattern == SparsityPattern.TwoFour) KeepTwoOfFour(row, scores);
            else KeepTop(row, scores, order, columns - prune);
            return scratch;
        }, _ => { });
        w.CopyTo(weight);
    }

    /// <summary>Zeroes all but the 2 best scores of each group of 4 (a shorter last group keeps at most 2).</summary>
    private static void KeepTwoOfFour(Span<float> row, float[] scores)
    {
        for (int start = 0; start < row.Length; start += 4)
        {
            int size = Math.Min(4, row.Length - start);
            if (size <= 2) continue;
            // The best and second best, ties to the lower column.
            int best = -1, second = -1;
            for (int i = start; i < start + size; i++)
            {
                if (best < 0 || scores[i] > scores[best]) { second = best; best = i; }
                else if (second < 0 || scores[i] > scores[second]) second = i;
            }
            for (int i = start; i < start + size; i++)
                if (i != best && i != second) row[i] = 0;
        }
    }

    /// <summary>Zeroes all but the <paramref name="keep"/> highest scores of the row (ties to the lower column).</summary>
    private static void KeepTop(Span<float> row, float[] scores, int[] order, int keep)
    {
        if (keep >= row.Length) return;
        for (int i = 0; i < order.Length; i++) order[i] = i;
        // Descending score, ascending column: the first `keep` survive.
        Array.Sort(order, (a, b) => scores[a] != scores[b] ? scores[b].CompareTo(scores[a]) : a.CompareTo(b));
        for (int i = keep; i < order.Length; i++) row[order[i]] = 0;
    }
}

/// <summary>Wanda's activation statistics: the L2 norm of every input channel of every linear layer.</summary>
public static class WandaCalibration
{
    /// <summary>
    /// Runs <paramref name="text"/> through <paramref name="model"/> in windows (each starting with BOS),
    /// up to <paramref name="maxTokens"/> tokens, and returns per linear weight name the L2 norm over
    /// all those tokens of each input channel. Also returns the token count.
    /// </summary>
    public static (Dictionary<string, float[]> Norms, int Tokens) CollectInputNorms(LlamaModel model, TextTokenizer tokenizer, string text,
                                                                                  int maxTokens, Action<long, long>? progress = null)
    {
        int[] tokens = tokenizer.Encode(text, addBos: false);
        if (tokens.Length == 0) throw new ArgumentException("the calibration text has no tokens");
        int window = Math.Min(Math.Min(model.Config.MaxContext, model.MaxBatch), 256);
        var sums = new Dictionary<string, double[]>(StringComparer.Ordinal);
        model.LinearInputObserver = (name, input, rows, stride, width) =>
        {
            if (!sums.TryGetValue(name, out var s)) sums[name] = s = new double[width];
            for (int r = 0; r < rows; r++)
            {
                var x = input.Slice(r * stride, width);
                for (int c = 0; c < width; c++) s[c] += (double)x[c] * x[c];
            }
        };
        int taken = 0;
        try
        {
            using var cache = model.CreateCache(window);
            var logits = new float[model.VocabSize];
            var chunk = new int[window];
            for (int start = 0; start < tokens.Length && taken < maxTokens; start += window - 1)
            {
                int count = Math.Min(Math.Min(window - 1, tokens.Length - start), Math.Max(1, maxTokens - taken - 1));
                chunk[0] = tokenizer.BosId;
                tokens.AsSpan(start, count).CopyTo(chunk.AsSpan(1));
                cache.Clear();
                model.Forward(chunk.AsSpan(0, count + 1), cache, logits);
                taken += count + 1;
                progress?.Invoke(Math.Min(taken, maxTokens), maxTokens);
            }
        }
        finally
        {
            model.LinearInputObserver = null;
        }
        var norms = sums.ToDictionary(kv => kv.Key, kv => kv.Value.Select(v => (float)Math.Sqrt(v)).ToArray(), StringComparer.Ordinal);
        return (norms, taken);
    }
}
