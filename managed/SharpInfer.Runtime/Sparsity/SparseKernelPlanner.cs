// SparseKernelPlanner.cs: decides at load where a pruned weight runs on si_sparse_matmul and where on
// si_matmul over a dense copy. Sparse kernels save bytes but not always time (a bitmask row walk or a
// 2:4 gather can lose to a tuned dense GEMM, more so as the batch grows), so for each distinct
// (out, in, format, sparsity bucket, dtype) it times both kernels on this backend at 1, 4, 16 and 64
// rows and keeps sparse for the row counts where it wins (one threshold: sparse up to T rows, dense above;
// see ChooseThreshold). Small matrices (timing would be noise) and
// the ref backend (not a performance backend) are decided by bytes: sparse when it stores fewer.
using System.Diagnostics;
using SharpInfer.Interop;
using SharpInfer.Models;
using SharpInfer.Tensors;

namespace SharpInfer.Sparsity;

/// <summary>How the model runner picks kernels for sparse weights.</summary>
public enum SparseKernelPolicy
{
    /// <summary>Time sparse against dense at load and keep the faster per shape and batch size.</summary>
    Auto,

    /// <summary>Always the sparse kernel (tests, and to measure it).</summary>
    Sparse,

    /// <summary>Always dense copies (to compare against).</summary>
    Dense,
}

/// <summary>One timed batch size: microseconds per call of each kernel.</summary>
public sealed record SparseKernelTiming(int Rows, double SparseMicroseconds, double DenseMicroseconds)
{
    /// <summary>Dense time over sparse time (above 1: sparse is faster).</summary>
    public double Speedup => DenseMicroseconds / SparseMicroseconds;
}

/// <summary>The decision for one group of weights sharing shape, format, sparsity bucket and dtype.</summary>
public sealed record SparseKernelChoice(string Group, int Out, int In, SparseFormat Format, double Sparsity, TensorDType ValuesDType,
                                        IReadOnlyList<string> Weights, int SparseMaxRows, IReadOnlyList<SparseKernelTiming> Timings,
                                        string Basis, double BytesRatio)
{
    /// <summary>True when the sparse kernel runs for every batch size.</summary>
    public bool AlwaysSparse => SparseMaxRows == int.MaxValue;

    /// <summary>True when the dense copy runs for every batch size.</summary>
    public bool AlwaysDense => SparseMaxRows == 0;

    /// <summary>Whether a batch of <paramref name="rows"/> rows runs sparse.</summary>
    public bool UsesSparse(int rows) => rows <= SparseMaxRows;

    /// <summary>e.g. "blk.*.ffn_up (5632x2048, bitmask 70%): sparse at m<=16 (2.1x at m=1), dense above (0.8x at m=64)".</summary>
    public string Describe()
    {
        string what = Format == SparseFormat.TwoFour ? "2:4" : $"bitmask {100 * Sparsity:F0}%";
        string head = $"{Group} ({Out}x{In}, {what}, {ValuesDType.ToString().ToLowerInvariant()}, {Weights.Count} weight{(Weights.Count == 1 ? "" : "s")})";
        string At(int rows) => Timings.FirstOrDefault(t => t.Rows == rows) is { } t ? $"{t.Speedup:F2}x at m={rows}" : "";
        if (Timings.Count == 0)
            return $"{head}: {(AlwaysSparse ? "sparse" : "dense")} ({Basis}; sparse stores {BytesRatio:F2}x the dense bytes)";
        string last = At(Timings[^1].Rows), first = At(Timings[0].Rows);
        if (AlwaysSparse) return $"{head}: sparse at every m ({first}, {last}; {Basis})";
        if (AlwaysDense) return $"{head}: dense at every m (sparse {first}, {last}; {Basis})";
        var firstLoss = Timings.First(t => t.Rows > SparseMaxRows);
        return $"{head}: sparse at m<={SparseMaxRows} ({first}), dense above ({At(firstLoss.Rows)}; {Basis})";
    }
}

public static unsafe class SparseKernelPlanner
{
    /// <summary>Row counts timed for each group.</summary>
    public static IReadOnlyList<int> TimedRows { get; } = [1, 4, 16, 64];

    /// <summary>Matrices with fewer elements are not timed (a call takes microseconds; noise decides).</summary>
    public const long MinTimedElements = 1L << 18;

    /// <summary>Total timing budget; groups left when it is spent are decided by bytes.</summary>
    public static TimeSpan Budget { get; set; } = TimeSpan.FromSeconds(2.5);

    /// <summary>Groups <paramref name="weights"/> by shape, format, sparsity bucket and dtype and decides each group.</summary>
    public static IReadOnlyList<SparseKernelChoice> Choose(NativeContext context, IReadOnlyList<(string Name, SparseWeight Weight)> weights,
                                                           SparseKernelPolicy policy)
    {
        var clock = Stopwatch.StartNew();
        var choices = new List<SparseKernelChoice>();
        var groups = weights.GroupBy(w => (w.Weight.Rows, w.Weight.Columns, w.Weight.Format, Bucket(w.Weight), w.Weight.ValuesDType));
        foreach (var group in groups)
        {
            var members = group.Select(g => g.Name).ToList();
            var sample = group.First().Weight;
            double bytesRatio = (double)sample.ByteLength / sample.DenseByteLength;
            string name = GroupName(members);
            double sparsity = group.Average(g => g.Weight.Sparsity);
            SparseKernelChoice ByRule(int maxRows, string basis) =>
                new(name, sample.Rows, sample.Columns, sample.Format, sparsity, sample.ValuesDType, members, maxRows, [], basis, bytesRatio);
            int bytesChoice = bytesRatio < 1 ? int.MaxValue : 0;

            if (policy == SparseKernelPolicy.Sparse) choices.Add(ByRule(int.MaxValue, "forced sparse"));
            else if (policy == SparseKernelPolicy.Dense) choices.Add(ByRule(0, "forced dense"));
            else if (context.Backend == SiBackend.Ref) choices.Add(ByRule(bytesChoice, "by bytes: the ref backend is not timed"));
            else if ((long)sample.Rows * sample.Columns < MinTimedElements) choices.Add(ByRule(bytesChoice, "by bytes: too small to time"));
            else if (clock.Elapsed > Budget) choices.Add(ByRule(bytesChoice, "by bytes: timing budget spent"));
            else
            {
                var timings = Time(context, sample);
                choices.Add(new SparseKernelChoice(name, sample.Rows, sample.Columns, sample.Format, sparsity, sample.ValuesDType, members,
                                                   ChooseThreshold(timings), timings, "timed", bytesRatio));
            }
        }
        return choices;
    }

    /// <summary>
    /// The row threshold (sparse at m &lt;= T, dense above; 0 = always dense, int.MaxValue = always sparse)
    /// that loses least against the faster kernel at each timed row count, in relative terms: cost(T) =
    /// sum over m of time(kernel T picks at m) / min(sparse, dense at m). One threshold rather than a
    /// per-m pick, so a single noisy timing cannot flip the choice back and forth; and always-sparse wins
    /// when it costs at most 0.1 more than the best (it needs no dense copy).
    /// </summary>
    internal static int ChooseThreshold(IReadOnlyList<SparseKernelTiming> timings)
    {
        double Cost(int threshold) => timings.Sum(t =>
            (t.Rows <= threshold ? t.SparseMicroseconds : t.DenseMicroseconds) / Math.Min(t.SparseMicroseconds, t.DenseMicroseconds));
        var candidates = new List<int> { 0 };
        candidates.AddRange(timings.Select(t => t.Rows).Where(r => r < timings[^1].Rows));
        candidates.Add(int.MaxValue);
        int best = candidates.MinBy(Cost);
        return Cost(int.MaxValue) <= Cost(best) + 0.1 ? int.MaxValue : best;
    }

    /// <summary>Bitmask weights group by sparsity in steps of 10%; 2:4 is one bucket.</summary>
    private static int Bucket(SparseWeight w) => w.Format == SparseFormat.TwoFour ? -1 : (int)Math.Round(w.Sparsity * 10);

    /// <summary>"blk.*.ffn_up" for blk.0.ffn_up.weight, blk.1.ffn_up.weight, ...; "blk.*.{attn_k,attn_v}" for two kinds.</summary>
    private static string GroupName(List<string> names)
    {
        var kinds = new List<string>();
        var others = new List<string>();
        foreach (string n in names)
        {
            string trimmed = n.EndsWith(".weight", StringComparison.Ordinal) ? n[..^".weight".Length] : n;
            string[] parts = trimmed.Split('.', 3);
            if (parts.Length == 3 && parts[0] == "blk" && int.TryParse(parts[1], out _))
            {
                if (!kinds.Contains(parts[2])) kinds.Add(parts[2]);
            }
            else if (!others.Contains(trimmed)) others.Add(trimmed);
        }
        var labels = new List<string>();
        if (kinds.Count == 1) labels.Add($"blk.*.{kinds[0]}");
        else if (kinds.Count > 1) labels.Add($"blk.*.{{{string.Join(",", kinds)}}}");
        labels.AddRange(others);
        return string.Join(" + ", labels);
    }

    /// <summary>Times sparse and dense on random activations; the minimum of a few calls per row count.</summary>
    private static List<SparseKernelTiming> Time(NativeContext context, SparseWeight weight)
    {
        int maxRows = TimedRows.Max();
        using var dense = weight.DenseSource == 0 ? weight.ToDenseNative() : null;
        void* denseData = dense is null ? (void*)weight.DenseSource : dense.Pointer;
        using var x = new HostBuffer<float>((long)maxRows * weight.Columns);
        using var y = new HostBuffer<float>((long)maxRows * weight.Rows);
        var rng = new Random(7);
        var xs = x.AsSpan();
        for (int i = 0; i < xs.Length; i++) xs[i] = (float)(rng.NextDouble() * 2 - 1);

        void Sparse(int m) => context.SparseMatmul(new SiSparseMatmulParams
        {
            X = x.Pointer, Values = (void*)weight.Values, Index = (void*)weight.Index, RowOffsets = (long*)weight.RowOffsets,
            Y = y.Pointer, XStride = weight.Columns, YStride = weight.Rows, M = m, N = weight.Rows, K = weight.Columns,
            ValuesDType = (SiDType)weight.ValuesDType, Format = (SiSparseFormat)weight.Format,
        });
        void Dense(int m) => context.Matmul(new SiMatmulParams
        {
            X = x.Pointer, W = denseData, Y = y.Pointer, XStride = weight.Columns, YStride = weight.Rows,
            M = m, N = weight.Rows, K = weight.Columns, WDType = (SiDType)weight.ValuesDType,
        });

        // Warm up both (page in mapped weights, start the thread pool).
        Sparse(1);
        Dense(1);
        context.Synchronize();
        var result = new List<SparseKernelTiming>();
        foreach (int m in TimedRows)
        {
            // Alternate the kernels so both see the same machine load; keep each one's fastest call.
            double sparseUs = double.MaxValue, denseUs = double.MaxValue;
            var total = Stopwatch.StartNew();
            for (int rep = 0; rep < 5 && (rep < 2 || total.Elapsed.TotalMilliseconds < 40); rep++)
            {
                sparseUs = Math.Min(sparseUs, Once(Sparse, m));
                denseUs = Math.Min(denseUs, Once(Dense, m));
            }
            result.Add(new SparseKernelTiming(m, sparseUs, denseUs));
        }
        return result;

        double Once(Action<int> run, int m)
        {
            long start = Stopwatch.GetTimestamp();
            run(m);
            context.Synchronize();
            return Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        }
    }
}
