// Sampler.cs: turns one row of logits into the next token under a request's SamplingParams.
// Logit bias, repetition penalty, frequency/presence penalties; then greedy is an argmax (ties to
// the lowest id), otherwise temperature, top-k, softmax, top-p, min-p and one draw from a seeded
// stream so runs repeat exactly. Log-probabilities are of the raw logits, before any of that.
namespace SharpInfer.Engine;

public sealed class Sampler
{
    private readonly SamplingParams _params;
    private ulong _state;
    private int[] _order = [];
    private float[] _probs = [];
    private float[] _raw = [];
    private readonly Dictionary<int, int> _outputCounts = [];

    public Sampler(SamplingParams parameters)
    {
        parameters.Validate();
        _params = parameters;
        _state = parameters.Seed ?? (ulong)Random.Shared.NextInt64();
    }

    /// <summary>Picks the next token. <paramref name="logits"/> is modified in place
    /// (penalties, temperature). <paramref name="history"/> holds prompt and output ids.</summary>
    public int Sample(Span<float> logits, ReadOnlySpan<int> history) => Sample(logits, history, 0, out _);

    /// <summary>
    /// Picks the next token. <paramref name="history"/> holds prompt then output ids; the first
    /// <paramref name="promptLength"/> are the prompt (frequency and presence penalties count only
    /// the output). <paramref name="logprobs"/> is set when the parameters ask for log-probabilities.
    /// </summary>
    public int Sample(Span<float> logits, ReadOnlySpan<int> history, int promptLength, out TokenLogprobs? logprobs)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(promptLength);
        if (_params.WantsLogprobs)
        {
            if (_raw.Length != logits.Length) _raw = new float[logits.Length];
            logits.CopyTo(_raw);
        }
        int token = Choose(logits, history, Math.Min(promptLength, history.Length));
        logprobs = _params.WantsLogprobs ? Logprobs(_raw, token, _params.TopLogprobs) : null;
        return token;
    }

    private int Choose(Span<float> logits, ReadOnlySpan<int> history, int promptLength)
    {
        if (_params.LogitBias is { Count: > 0 } bias)
            foreach (var (id, value) in bias)
                if ((uint)id < (uint)logits.Length) logits[id] += value;
        if (_params.RepetitionPenalty != 1.0f) ApplyRepetitionPenalty(logits, history, _params.RepetitionPenalty);
        if (_params.FrequencyPenalty != 0 || _params.PresencePenalty != 0)
            ApplyOutputPenalties(logits, history[promptLength..]);
        if (_params.Temperature == 0 || _params.TopK == 1) return Argmax(logits);

        int n = logits.Length;
        if (_order.Length != n) { _order = new int[n]; _probs = new float[n]; }
        float invT = 1.0f / _params.Temperature;

        // Candidates sorted by logit, descending (ties: lower id first), cut to top-k.
        for (int i = 0; i < n; i++) _order[i] = i;
        var scores = logits.ToArray();
        Array.Sort(_order, (a, b) => scores[a] != scores[b] ? scores[b].CompareTo(scores[a]) : a.CompareTo(b));
        int count = _params.TopK > 0 ? Math.Min(_params.TopK, n) : n;

        // Softmax over the candidates (max-subtracted).
        float max = scores[_order[0]] * invT;
        double sum = 0;
        for (int i = 0; i < count; i++)
        {
            float p = MathF.Exp(scores[_order[i]] * invT - max);
            _probs[i] = p;
            sum += p;
        }
        for (int i = 0; i < count; i++) _probs[i] = (float)(_probs[i] / sum);

        if (_params.TopP < 1.0f)
        {
            double cumulative = 0;
            for (int i = 0; i < count; i++)
            {
                cumulative += _probs[i];
                if (cumulative >= _params.TopP) { count = i + 1; break; }
            }
        }
        if (_params.MinP > 0)
        {
            float threshold = _params.MinP * _probs[0];
            int kept = 1;
            while (kept < count && _probs[kept] >= threshold) kept++;
            count = kept;
        }

        double total = 0;
        for (int i = 0; i < count; i++) total += _probs[i];
        double target = NextUnit() * total;
        double running = 0;
        for (int i = 0; i < count; i++)
        {
            running += _probs[i];
            if (target < running) return _order[i];
        }
        return _order[count - 1];
    }

    /// <summary>Index of the largest value; ties go to the lowest index; NaN never wins.</summary>
    public static int Argmax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        float bestValue = float.NegativeInfinity;
        bool found = false;
        for (int i = 0; i < logits.Length; i++)
        {
            float v = logits[i];
            if (float.IsNaN(v)) continue;
            if (!found || v > bestValue) { best = i; bestValue = v; found = true; }
        }
        return best;
    }

    private static void ApplyRepetitionPenalty(Span<float> logits, ReadOnlySpan<int> history, float penalty)
    {
        var seen = new HashSet<int>();
        foreach (int id in history)
        {
            if ((uint)id >= (uint)logits.Length || !seen.Add(id)) continue;
            logits[id] = logits[id] > 0 ? logits[id] / penalty : logits[id] * penalty;
        }
    }

    /// <summary>OpenAI-style: logit -= frequency * count + presence * (count > 0), over output tokens.</summary>
    private void ApplyOutputPenalties(Span<float> logits, ReadOnlySpan<int> output)
    {
        _outputCounts.Clear();
        foreach (int id in output)
            if ((uint)id < (uint)logits.Length)
                _outputCounts[id] = _outputCounts.GetValueOrDefault(id) + 1;
        foreach (var (id, count) in _outputCounts)
            logits[id] -= _params.FrequencyPenalty * count + _params.PresencePenalty;
    }

    /// <summary>Log-softmax of <paramref name="raw"/> at <paramref name="token"/>, and the
    /// <paramref name="top"/> most likely tokens (descending; ties to the lower id). NaN counts as impossible.</summary>
    public static TokenLogprobs Logprobs(ReadOnlySpan<float> raw, int token, int top)
    {
        float max = float.NegativeInfinity;
        foreach (float v in raw) if (v > max) max = v;
        double sum = 0;
        foreach (float v in raw) if (!float.IsNaN(v)) sum += Math.Exp(v - max);
        float logSum = max + (float)Math.Log(sum);

        var best = new List<TokenLogprob>(top + 1);
        if (top > 0)
            for (int id = 0; id < raw.Length; id++)
            {
                float v = raw[id];
                if (float.IsNaN(v) || (best.Count == top && v <= raw[best[^1].TokenId])) continue;
                int at = best.Count;
                while (at > 0 && raw[best[at - 1].TokenId] < v) at--;
                best.Insert(at, new TokenLogprob(id, 0));
                if (best.Count > top) best.RemoveAt(top);
            }
        for (int i = 0; i < best.Count; i++) best[i] = best[i] with { Logprob = raw[best[i].TokenId] - logSum };
        float chosen = float.IsNaN(raw[token]) ? float.NegativeInfinity : raw[token] - logSum;
        return new TokenLogprobs(token, chosen, best);
    }

    // SplitMix64: small, fast and identical on every platform and .NET version.
    private double NextUnit()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z >> 11) * (1.0 / (1UL << 53));
    }
}
