// ActivationAwareScaling.cs: the "aware" quantization method. Calibration text runs through the f32
// model while the runner reports each linear layer's input; then, for each group of linears that
// share one input, a per-input-channel scale s is searched on a grid of alpha in [0, 1] and folded
// in exactly: the consumers' weight columns are multiplied by s and the op that produces their
// input is divided by s (an RMSNorm weight, or the rows of the linear before: v_proj for o_proj,
// up_proj for down_proj), so the f32 model computes the same function but the quantizer sees
// weights whose important columns are larger.
//   weight-only (int8, int4), AWQ-style:  s_c = mean_t |x_tc| ^ alpha, normalized by sqrt(max s * min s):
//     channels that carry large activations get finer effective quantization steps.
//   W8A8, SmoothQuant-style migration:   s_c = max_t |x_tc| ^ alpha / max_n |w_nc| ^ (1 - alpha):
//     activation outliers move into the weights, where per-row/group int8 absorbs them, so the
//     per-token int8 activation quantization loses less.
// alpha is chosen per group by the output error sum ||X W^T - Q(X / s) Q(W s)^T||^2 on the
// calibration rows (activation fake-quantized for W8A8); alpha = 0 is plain RTN, so the search
// never does worse than RTN on its calibration data. Then, as AWQ's clip search does, each row and
// group of the scaled weight picks the range ratio r in {1, 0.95, ..., 0.5} whose quantized values
// give the smallest output error sum_t (x_t . (w - Q_r(w)))^2 over that group (r = 1 is RTN again).
using SharpInfer.Interop;
using SharpInfer.Llama;
using SharpInfer.Tensors;
using SharpInfer.Tokenization;

namespace SharpInfer.Quantization;

/// <summary>Activations captured at one linear layer's input: Rows x Width, row-major.</summary>
internal sealed class CapturedActivations(int width, int capacity)
{
    public int Width { get; } = width;
    public float[] Values { get; } = new float[(long)capacity * width];
    public int Rows { get; private set; }
    public int Capacity { get; } = capacity;

    public void Add(ReadOnlySpan<float> input, int rows, int stride)
    {
        for (int r = 0; r < rows && Rows < Capacity; r++, Rows++)
            input.Slice(r * stride, Width).CopyTo(Values.AsSpan(Rows * Width, Width));
    }
}

internal static class Calibration
{
    /// <summary>
    /// Runs <paramref name="text"/> through <paramref name="model"/> in windows (each starting with
    /// BOS) and keeps up to <paramref name="maxRows"/> input rows of every linear in <paramref name="names"/>.
    /// </summary>
    public static Dictionary<string, CapturedActivations> Capture(LlamaModel model, TextTokenizer tokenizer, string text, int maxRows,
                                                                  IReadOnlyCollection<string> names, Action<long, long>? progress = null)
    {
        int[] tokens = tokenizer.Encode(text, addBos: false);
        if (tokens.Length == 0) throw new ArgumentException("the calibration text has no tokens");
        int window = Math.Min(Math.Min(model.Config.MaxContext, model.MaxBatch), 256);
        var captured = new Dictionary<string, CapturedActivations>(StringComparer.Ordinal);
        model.LinearInputObserver = (name, input, rows, stride, width) =>
        {
            if (!names.Contains(name)) return;
            if (!captured.TryGetValue(name, out var c)) captured[name] = c = new CapturedActivations(width, maxRows);
            c.Add(input, rows, stride);
        };
        try
        {
            using var cache = model.CreateCache(window);
            var logits = new float[model.VocabSize];
            int taken = 0;
            var chunk = new int[window];
            for (int start = 0; start < tokens.Length && taken < maxRows; start += window - 1)
            {
                int count = Math.Min(window - 1, tokens.Length - start);
                chunk[0] = tokenizer.BosId;
                tokens.AsSpan(start, count).CopyTo(chunk.AsSpan(1));
                cache.Clear();
                model.Forward(chunk.AsSpan(0, count + 1), cache, logits);
                taken += count + 1;
                progress?.Invoke(Math.Min(taken, maxRows), maxRows);
            }
        }
        finally
        {
            model.LinearInputObserver = null;
        }
        return captured;
    }
}

/// <summary>Searches and folds per-channel scales for the linears of one model held as f32 arrays.</summary>
internal sealed unsafe class ActivationAwareScaling(NativeContext context, QuantScheme scheme, int groupSize, int gridPoints)
{
    /// <summary>A linear consuming the group's input: its name and f32 weight [Rows, Columns] (modified in place).</summary>
    public sealed record Consumer(string Name, float[] Weight, int Rows);

    /// <summary>
    /// Where 1/s goes: a vector (RMSNorm weight) indexed by the target index, or the rows of a
    /// producing linear [TargetCount, producerColumns] (and its bias, if any).
    /// </summary>
    public sealed record FoldTarget(string Name, float[] Values, int RowLength, float[]? Bias = null);

    /// <summary>
    /// Searches alpha for consumers that read <paramref name="x"/> and folds the best scales.
    /// <paramref name="targetOf"/> maps each input channel to its fold-target index (channels mapped
    /// to one index share one scale, as GQA's o_proj columns sharing a v_proj row must).
    /// </summary>
    public ScaleSearchInfo SearchAndFold(string groupName, CapturedActivations x, IReadOnlyList<Consumer> consumers,
                                         FoldTarget target, int[] targetOf, int targetCount, Dictionary<string, float[]>? clipRatios = null)
    {
        int k = x.Width, t = x.Rows;
        if (t == 0) throw new InvalidOperationException($"no calibration activations reached {groupName}");
        foreach (var c in consumers)
            if (c.Weight.Length != (long)c.Rows * k) throw new ArgumentException($"{c.Name} is not [{c.Rows}, {k}]");

        // Per-target statistics: mean |x| (AWQ) or max |x| and max |w| (SmoothQuant).
        var xMean = new double[targetCount];
        var xMax = new double[targetCount];
        var wMax = new double[targetCount];
        var members = new int[targetCount];
        for (int c = 0; c < k; c++) members[targetOf[c]]++;
        for (int c = 0; c < k; c++)
        {
            double sum = 0, max = 0;
            for (int r = 0; r < t; r++)
            {
                double v = Math.Abs(x.Values[(long)r * k + c]);
                sum += v;
                max = Math.Max(max, v);
            }
            int p = targetOf[c];
            xMean[p] += sum / t / members[p];
            xMax[p] = Math.Max(xMax[p], max);
        }
        foreach (var consumer in consumers)
            for (int n = 0; n < consumer.Rows; n++)
                for (int c = 0; c < k; c++)
                    wMax[targetOf[c]] = Math.Max(wMax[targetOf[c]], Math.Abs(consumer.Weight[(long)n * k + c]));

        using var input = new HostBuffer<float>((long)t * k);
        using var scaled = new HostBuffer<float>((long)t * k);
        x.Values.AsSpan(0, t * k).CopyTo(input.AsSpan(0, t * k));
        int maxRows = consumers.Max(c => c.Rows);
        using var weight = new HostBuffer<float>((long)maxRows * k);
        using var output = new HostBuffer<float>((long)t * maxRows);
        var references = consumers.Select(c =>
        {
            c.Weight.AsSpan().CopyTo(weight.AsSpan(0, c.Weight.Length));
            Multiply(input.Pointer, weight.Pointer, output.Pointer, t, c.Rows, k);
            return new ReadOnlySpan<float>(output.Pointer, t * c.Rows).ToArray();
        }).ToList();

        double bestError = double.PositiveInfinity, bestAlpha = 0, rtnError = 0;
        double[] bestScales = new double[targetCount];
        var scales = new double[targetCount];
        var quantizedRow = new float[k];
        for (int i = 0; i <= gridPoints; i++)
        {
            double alpha = (double)i / gridPoints;
            ComputeScales(alpha, xMean, xMax, wMax, scales);
            // X / s, then the activation quantization the W8A8 kernel applies per row.
            var xs = scaled.AsSpan(0, t * k);
            for (int r = 0; r < t; r++)
            {
                var row = xs.Slice(r * k, k);
                for (int c = 0; c < k; c++) row[c] = (float)(x.Values[(long)r * k + c] / scales[targetOf[c]]);
                if (scheme == QuantScheme.W8A8) RtnQuantizer.FakeQuantizeActivationRow(row);
            }
            double error = 0;
            for (int ci = 0; ci < consumers.Count; ci++)
            {
                var c = consumers[ci];
                var ws = new float[c.Weight.Length];
                for (int n = 0; n < c.Rows; n++)
                    for (int col = 0; col < k; col++)
                        ws[(long)n * k + col] = (float)(c.Weight[(long)n * k + col] * scales[targetOf[col]]);
                using (var q = RtnQuantizer.Quantize(ws, c.Rows, k, scheme.WeightFormat(), groupSize == 0 ? k : groupSize))
                {
                    var dst = weight.AsSpan(0, c.Weight.Length);
                    for (int n = 0; n < c.Rows; n++) q.DequantizeRow(n, dst.Slice(n * k, k));
                }
                Multiply(scaled.Pointer, weight.Pointer, output.Pointer, t, c.Rows, k);
                var y = new ReadOnlySpan<float>(output.Pointer, t * c.Rows);
                var reference = references[ci];
                for (int j = 0; j < y.Length; j++)
                {
                    double d = (double)y[j] - reference[j];
                    error += d * d;
                }
            }
            if (i == 0) rtnError = error;
            if (error < bestError)
            {
                bestError = error;
                bestAlpha = alpha;
                scales.CopyTo(bestScales, 0);
            }
        }

        // Fold: consumer columns * s, target / s. The f32 function is unchanged.
        foreach (var c in consumers)
            for (int n = 0; n < c.Rows; n++)
                for (int col = 0; col < k; col++)
                    c.Weight[(long)n * k + col] = (float)(c.Weight[(long)n * k + col] * bestScales[targetOf[col]]);
        if (clipRatios is not null)
        {
            // The consumers now see X / s.
            int sampleRows = Math.Min(t, ClipSampleRows), step = t / sampleRows;
            var sample = new float[sampleRows * k];
            for (int r = 0; r < sampleRows; r++)
                for (int col = 0; col < k; col++)
                    sample[r * k + col] = (float)(x.Values[(long)r * step * k + col] / bestScales[targetOf[col]]);
            foreach (var c in consumers) clipRatios[c.Name] = SearchClip(sample, sampleRows, k, c.Weight, c.Rows);
        }
        for (int p = 0; p < targetCount; p++)
        {
            var row = target.Values.AsSpan(p * target.RowLength, target.RowLength);
            for (int j = 0; j < row.Length; j++) row[j] = (float)(row[j] / bestScales[p]);
            if (target.Bias is { } bias) bias[p] = (float)(bias[p] / bestScales[p]);
        }
        return new ScaleSearchInfo(groupName, target.Name, bestAlpha, bestError, rtnError);
    }

    /// <summary>Calibration rows the clip search uses (evenly spaced).</summary>
    public const int ClipSampleRows = 128;

    /// <summary>Range ratios the clip search tries.</summary>
    private static readonly float[] ClipGrid = [1f, 0.95f, 0.9f, 0.85f, 0.8f, 0.75f, 0.7f, 0.65f, 0.6f, 0.55f, 0.5f];

    /// <summary>Per (row, group) clip ratio minimizing sum_t (x_t . (w - Q_r(w)))^2 over the group's columns.</summary>
    private float[] SearchClip(float[] x, int rows, int k, float[] weight, int outRows)
    {
        int group = groupSize == 0 ? k : Math.Min(groupSize, k);
        int groups = QuantizedWeight.GroupCountFor(k, group);
        var format = scheme.WeightFormat();
        var ratios = new float[(long)outRows * groups];
        Parallel.For(0, outRows, n =>
        {
            using var one = QuantizedWeight.Allocate(format, 1, k, group);
            var w = weight.AsSpan(n * k, k);
            var deq = new float[k];
            var best = new double[groups];
            Array.Fill(best, double.PositiveInfinity);
            var clip = new float[groups];
            foreach (float r in ClipGrid)
            {
                Array.Fill(clip, r);
                RtnQuantizer.QuantizeRow(w, one, 0, clip);
                one.DequantizeRow(0, deq);
                for (int g = 0; g < groups; g++)
                {
                    int start = g * group, length = Math.Min(group, k - start);
                    double error = 0;
                    for (int t = 0; t < rows; t++)
                    {
                        double dot = 0;
                        for (int j = start; j < start + length; j++) dot += x[t * k + j] * (double)(w[j] - deq[j]);
                        error += dot * dot;
                    }
                    if (error < best[g])
                    {
                        best[g] = error;
                        ratios[(long)n * groups + g] = r;
                    }
                }
            }
        });
        return ratios;
    }

    private void ComputeScales(double alpha, double[] xMean, double[] xMax, double[] wMax, double[] scales)
    {
        if (alpha == 0)
        {
            Array.Fill(scales, 1.0);
            return;
        }
        if (scheme == QuantScheme.W8A8)
        {
            for (int p = 0; p < scales.Length; p++)
            {
                double s = xMax[p] > 0 && wMax[p] > 0 ? Math.Pow(xMax[p], alpha) / Math.Pow(wMax[p], 1 - alpha) : 1.0;
                scales[p] = Math.Clamp(s, 1e-5, 1e5);
            }
            return;
        }
        double lo = double.PositiveInfinity, hi = 0;
        for (int p = 0; p < scales.Length; p++)
        {
            scales[p] = Math.Max(Math.Pow(xMean[p], alpha), 1e-4);
            lo = Math.Min(lo, scales[p]);
            hi = Math.Max(hi, scales[p]);
        }
        double norm = Math.Sqrt(lo * hi);
        for (int p = 0; p < scales.Length; p++) scales[p] /= norm;
    }

    /// <summary>y [m, n] = x [m, k] * w [n, k]^T on the native f32 matmul.</summary>
    private void Multiply(float* x, float* w, float* y, int m, int n, int k) =>
        context.Matmul(new SiMatmulParams { X = x, W = w, Y = y, XStride = k, YStride = n, M = m, N = n, K = k, WDType = SiDType.F32 });
}
