// Evaluation.cs: perplexity of a model over a token stream and, against a reference model, the
// per-token KL divergence and top-1 agreement, computed the way llama.cpp's perplexity tool does:
// the text is cut into windows of n_ctx tokens, each window's first token is replaced by BOS, and
// only the second half of each window is scored (every scored token then has at least n_ctx/2
// tokens of context). KL is KL(P_reference || P_model) in nats; log-softmax in double.
using SharpInfer.Llama;

namespace SharpInfer.Quantization;

public sealed record EvalResult
{
    public required int Context { get; init; }
    public required int Windows { get; init; }
    /// <summary>Tokens scored (windows x (n_ctx - 1 - n_ctx/2)).</summary>
    public required int ScoredTokens { get; init; }
    public required double Perplexity { get; init; }
    /// <summary>Standard error of the perplexity (from the standard error of the mean log-likelihood).</summary>
    public required double PerplexityStdErr { get; init; }

    // Against a reference model (null without one).
    public double? ReferencePerplexity { get; init; }
    /// <summary>ln(PPL(model) / PPL(reference)) = mean NLL difference.</summary>
    public double? LnPerplexityRatio { get; init; }
    public double? MeanKl { get; init; }
    public double? KlStdErr { get; init; }
    public double? MedianKl { get; init; }
    public double? P99Kl { get; init; }
    public double? MaxKl { get; init; }
    /// <summary>Fraction of scored positions where both models' most likely token is the same.</summary>
    public double? Top1Agreement { get; init; }
    public double? Top1StdErr { get; init; }
}

public static class Evaluation
{
    /// <summary>
    /// Scores <paramref name="tokens"/> (without BOS) with <paramref name="model"/> and, when given,
    /// compares it with <paramref name="reference"/> position by position. Needs at least one full window.
    /// </summary>
    public static EvalResult Evaluate(LlamaModel model, LlamaModel? reference, IReadOnlyList<int> tokens, int context, int bosId,
                                      Action<long, long>? progress = null)
    {
        if (context < 4) throw new ArgumentException($"the eval context must be >= 4 tokens (got {context})");
        if (context > model.Config.MaxContext) throw new ArgumentException($"--ctx {context} exceeds the model's context of {model.Config.MaxContext}");
        if (reference is not null)
        {
            if (reference.VocabSize != model.VocabSize)
                throw new ArgumentException($"the reference model's vocabulary ({reference.VocabSize}) differs from the model's ({model.VocabSize})");
            if (context > reference.Config.MaxContext) throw new ArgumentException($"--ctx {context} exceeds the reference model's context of {reference.Config.MaxContext}");
        }
        int windows = tokens.Count / context;
        if (windows == 0) throw new ArgumentException($"the text has {tokens.Count} tokens, fewer than one window of {context}");

        int vocab = model.VocabSize, first = context / 2;
        var logits = new float[context * vocab];
        var refLogits = reference is null ? null : new float[context * vocab];
        using var cache = model.CreateCache(context);
        using var refCache = reference?.CreateCache(context);
        var window = new int[context];
        var nll = new List<double>();
        var refNll = new List<double>();
        var kl = new List<double>();
        int agree = 0;
        var logProbs = new double[vocab];
        var refLogProbs = new double[vocab];

        for (int w = 0; w < windows; w++)
        {
            for (int i = 0; i < context; i++) window[i] = tokens[w * context + i];
            window[0] = bosId;
            cache.Clear();
            model.Forward(window, cache, logits, allPositions: true);
            if (reference is not null)
            {
                refCache!.Clear();
                reference.Forward(window, refCache, refLogits, allPositions: true);
            }
            for (int j = first; j < context - 1; j++)
            {
                int next = window[j + 1];
                LogSoftmax(logits.AsSpan(j * vocab, vocab), logProbs);
                nll.Add(-logProbs[next]);
                if (reference is null) continue;
                LogSoftmax(refLogits.AsSpan(j * vocab, vocab), refLogProbs);
                refNll.Add(-refLogProbs[next]);
                double divergence = 0;
                for (int v = 0; v < vocab; v++)
                {
                    double p = Math.Exp(refLogProbs[v]);
                    if (p > 0) divergence += p * (refLogProbs[v] - logProbs[v]);
                }
                kl.Add(Math.Max(divergence, 0));
                if (ArgMax(logProbs) == ArgMax(refLogProbs)) agree++;
            }
            progress?.Invoke(w + 1, windows);
        }

        var (meanNll, nllErr) = MeanAndStdErr(nll);
        double ppl = Math.Exp(meanNll);
        var result = new EvalResult
        {
            Context = context, Windows = windows, ScoredTokens = nll.Count,
            Perplexity = ppl, PerplexityStdErr = ppl * nllErr,
        };
        if (reference is null) return result;

        var (meanRef, _) = MeanAndStdErr(refNll);
        var (meanKl, klErr) = MeanAndStdErr(kl);
        var sorted = kl.Order().ToArray();
        double top1 = (double)agree / kl.Count;
        return result with
        {
            ReferencePerplexity = Math.Exp(meanRef),
            LnPerplexityRatio = meanNll - meanRef,
            MeanKl = meanKl,
            KlStdErr = klErr,
            MedianKl = Percentile(sorted, 0.5),
            P99Kl = Percentile(sorted, 0.99),
            MaxKl = sorted[^1],
            Top1Agreement = top1,
            Top1StdErr = kl.Count > 1 ? Math.Sqrt(top1 * (1 - top1) / (kl.Count - 1)) : 0,
        };
    }

    /// <summary>Mean KL(P_a || P_b) over rows of two logit matrices [rows, vocab] (for tests and quick checks).</summary>
    public static double MeanKl(ReadOnlySpan<float> referenceLogits, ReadOnlySpan<float> logits, int vocab)
    {
        int rows = logits.Length / vocab;
        var a = new double[vocab];
        var b = new double[vocab];
        double total = 0;
        for (int r = 0; r < rows; r++)
        {
            LogSoftmax(referenceLogits.Slice(r * vocab, vocab), a);
            LogSoftmax(logits.Slice(r * vocab, vocab), b);
            for (int v = 0; v < vocab; v++) total += Math.Exp(a[v]) * (a[v] - b[v]);
        }
        return total / rows;
    }

    internal static void LogSoftmax(ReadOnlySpan<float> logits, double[] result)
    {
        double max = double.NegativeInfinity;
        foreach (float v in logits) max = Math.Max(max, v);
        double sum = 0;
        for (int i = 0; i < logits.Length; i++) sum += Math.Exp(logits[i] - max);
        double log = max + Math.Log(sum);
        for (int i = 0; i < logits.Length; i++) result[i] = logits[i] - log;
    }

    private static int ArgMax(double[] values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    private static (double Mean, double StdErr) MeanAndStdErr(List<double> values)
    {
        double mean = values.Average();
        if (values.Count < 2) return (mean, 0);
        double variance = values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1);
        return (mean, Math.Sqrt(variance / values.Count));
    }

    private static double Percentile(double[] sorted, double q) => sorted[Math.Min(sorted.Length - 1, (int)Math.Floor(q * (sorted.Length - 1) + 0.5))];
}
