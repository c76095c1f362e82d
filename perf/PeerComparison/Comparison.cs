// Comparison.cs: runs one model on both runtimes in alternation (A B A B ...) over the same
// token ids and collects per-round figures: prefill and decode tokens/s at batch 1, and
// aggregate decode tokens/s with N sequences decoding together.
using SharpInfer.Llama;
using LLama.Native;

namespace SharpInfer.PeerComparison;

/// <summary>One measured case: per-round figures of each runtime (higher is better).</summary>
internal sealed class CaseResult(string key, string title, double? target)
{
    public string Key { get; } = key;
    public string Title { get; } = title;
    /// <summary>Required ours/theirs ratio from the performance issue, when it sets one.</summary>
    public double? Target { get; } = target;
    public List<double> Ours { get; } = [];
    public List<double> Theirs { get; } = [];
    /// <summary>Per round: CPU (in cores) that other processes used during the busier of the two runs.</summary>
    public List<double> Busy { get; } = [];

    /// <summary>Rounds whose two runs had the machine (nearly) to themselves.</summary>
    public List<int> CleanRounds => Enumerable.Range(0, Math.Min(Busy.Count, Math.Min(Ours.Count, Theirs.Count)))
        .Where(i => Busy[i] < Contention.CleanThreshold).ToList();
    public double? CleanOursMedian => Stats.Median(CleanRounds.Select(i => Ours[i]).ToList());
    public double? CleanTheirsMedian => Stats.Median(CleanRounds.Select(i => Theirs[i]).ToList());
    public double? CleanRatio => CleanOursMedian is double a && CleanTheirsMedian is double b && b > 0 ? a / b : null;

    public double? OursMedian => Stats.Median(Ours);
    public double? TheirsMedian => Stats.Median(Theirs);
    public double? Ratio => OursMedian is double a && TheirsMedian is double b && b > 0 ? a / b : null;
    /// <summary>Median of the ratios of the two runs made back to back in each round.</summary>
    public double? PairedRatio => Ours.Count == Theirs.Count && Ours.Count > 0
        ? Stats.Median(Ours.Zip(Theirs, (a, b) => a / b).ToList()) : null;
}

internal sealed class ModelResult
{
    public required string Path { get; init; }
    public string Name => System.IO.Path.GetFileName(Path);
    public long WeightBytes { get; set; }
    public string? Architecture { get; set; }
    public int PromptTokens { get; set; }
    public int GenTokens { get; set; }
    public int ConcurrentPromptTokens { get; set; }
    public List<CaseResult> Cases { get; } = [];
    public List<string> Errors { get; } = [];
    /// <summary>Greedy tokens of the warm-up round that agree between the runtimes (leading run), per case.</summary>
    public List<(string Case, int Agreeing, int Total)> Agreement { get; } = [];
    public bool LlamaLoaded { get; set; }
    /// <summary>1-minute load average after each timed round: other work on a shared machine shows here.</summary>
    public List<double> LoadAverages { get; } = [];
}

internal static class Comparison
{
    public static ModelResult Run(string path, Options o, TextWriter log)
    {
        var result = new ModelResult { Path = System.IO.Path.GetFullPath(path) };
        var kv = o.Kv == "f32" ? KvCacheDType.F32 : KvCacheDType.F16;
        int maxBatch = Math.Max(256, Math.Max(o.PromptTokens, o.Concurrency.DefaultIfEmpty(1).Max()));

        log.WriteLine($"== {result.Name}: loading SharpInfer");
        using var ours = new SharpInferRunner(path, o.Threads, kv, maxBatch);
        var c = ours.Config;
        result.WeightBytes = ours.WeightBytes;
        result.Architecture = $"{c.NumLayers} layers, hidden {c.HiddenSize}, heads {c.NumHeads}/{c.NumKvHeads}, ffn {c.IntermediateSize}, vocab {c.VocabSize}";
        int gen = o.GenTokensFor(ours.WeightBytes);
        int prompt = o.PromptTokens, concurrentPrompt = o.ConcurrentPromptTokens;
        if (prompt + gen > c.MaxContext || concurrentPrompt + gen > c.MaxContext)
            throw new ArgumentException($"{result.Name}: prompt + decode steps exceed the model's context of {c.MaxContext}");
        result.PromptTokens = prompt;
        result.GenTokens = gen;
        result.ConcurrentPromptTokens = concurrentPrompt;

        log.WriteLine($"== {result.Name}: loading llama.cpp");
        LlamaCppRunner? theirs = null;
        try
        {
            theirs = new LlamaCppRunner(path, o.Threads, kv == KvCacheDType.F32 ? GGMLType.GGML_TYPE_F32 : GGMLType.GGML_TYPE_F16, o.LlamaKvUnified);
            if (theirs.VocabSize != ours.VocabSize)
                throw new InvalidOperationException($"llama.cpp reports a vocabulary of {theirs.VocabSize}, SharpInfer {ours.VocabSize}");
            result.LlamaLoaded = true;
        }
        catch (Exception e)
        {
            result.Errors.Add($"llama.cpp could not load {result.Name}: {Describe(e)}");
            log.WriteLine($"   {result.Errors[^1]}");
            theirs?.Dispose();
            theirs = null;
        }

        // The same ids for both: BOS, then fixed pseudo-random ids (no tokenizer on either side).
        int vocab = ours.VocabSize, bos = ours.BosId;
        int[] MakePrompt(int length, int seed)
        {
            var rng = new Random(seed);
            int[] ids = new int[length];
            ids[0] = bos;
            for (int i = 1; i < length; i++) ids[i] = rng.Next(3, vocab);
            return ids;
        }
        int[] singlePrompt = MakePrompt(prompt, 1234);

        var prefill = new CaseResult("prefill_b1", $"prefill, batch 1 (P={prompt})", 1.5);
        var decode = new CaseResult("decode_b1", "decode, batch 1", 1.2);
        result.Cases.Add(prefill);
        result.Cases.Add(decode);
        var concurrent = new List<(int N, CaseResult Case, IConcurrentSession Ours, IConcurrentSession? Theirs)>();
        try
        {
            foreach (int n in o.Concurrency)
            {
                log.WriteLine($"== {result.Name}: prefilling {n} sequences of {concurrentPrompt} tokens on each runtime (not timed)");
                int[][] prompts = Enumerable.Range(0, n).Select(s => MakePrompt(concurrentPrompt, 1000 + s)).ToArray();
                var cr = new CaseResult($"decode_c{n}", $"decode, {n} sequences (aggregate)", n == 16 ? 2.0 : null);
                result.Cases.Add(cr);
                IConcurrentSession oursSession = ours.PrepareConcurrent(prompts, gen);
                IConcurrentSession? theirsSession = null;
                if (theirs is not null)
                {
                    try { theirsSession = theirs.PrepareConcurrent(prompts, gen); }
                    catch (Exception e) { result.Errors.Add($"llama.cpp, {n} sequences: {Describe(e)}"); }
                }
                concurrent.Add((n, cr, oursSession, theirsSession));
            }

            for (int round = 0; round <= o.Rounds; round++)
            {
                bool warmup = round == 0;
                var (oursSingle, oursBusy) = Contention.Measure(() => ours.RunSingle(singlePrompt, gen));
                var (theirsSingle, theirsBusy) = theirs is null ? (null, 0.0) : Contention.Measure(() => theirs.RunSingle(singlePrompt, gen));
                if (warmup && theirsSingle is not null) result.Agreement.Add(("decode_b1", Stats.CommonPrefix(oursSingle.Tokens, theirsSingle.Tokens), gen));
                if (!warmup)
                {
                    prefill.Ours.Add(prompt / oursSingle.PrefillSeconds);
                    decode.Ours.Add(gen / oursSingle.DecodeSeconds);
                    prefill.Busy.Add(oursBusy);
                    decode.Busy.Add(oursBusy);
                    if (theirsSingle is not null)
                    {
                        prefill.Theirs.Add(prompt / theirsSingle.PrefillSeconds);
                        decode.Theirs.Add(gen / theirsSingle.DecodeSeconds);
                        prefill.Busy[^1] = decode.Busy[^1] = Math.Max(oursBusy, theirsBusy);
                    }
                }
                foreach (var (n, cr, oursSession, theirsSession) in concurrent)
                {
                    var (a, busyA) = Contention.Measure(() => oursSession.Decode(gen));
                    var (b, busyB) = theirsSession is null ? (null, 0.0) : Contention.Measure(() => theirsSession.Decode(gen));
                    if (warmup && b is not null)
                        result.Agreement.Add((cr.Key, Enumerable.Range(0, n).Sum(s => Stats.CommonPrefix(a.Tokens[s], b.Tokens[s])), n * gen));
                    if (warmup) continue;
                    cr.Ours.Add(n * gen / a.Seconds);
                    cr.Busy.Add(Math.Max(busyA, busyB));
                    if (b is not null) cr.Theirs.Add(n * gen / b.Seconds);
                }
                if (!warmup && Stats.LoadAverage() is double load) result.LoadAverages.Add(load);
                log.WriteLine(warmup ? $"   warm-up round done" : $"   round {round}/{o.Rounds}: " + string.Join("  ", result.Cases.Select(x =>
                    $"{x.Key} {x.Ours[^1]:F1}" + (x.Theirs.Count == x.Ours.Count ? $"/{x.Theirs[^1]:F1}" : ""))) +
                    (result.LoadAverages.Count > 0 ? $"  (load {result.LoadAverages[^1]:F2})" : ""));
            }
        }
        finally
        {
            foreach (var (_, _, a, b) in concurrent)
            {
                a.Dispose();
                b?.Dispose();
            }
            theirs?.Dispose();
        }
        return result;
    }

    public static string Describe(Exception e)
    {
        var parts = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException) parts.Add($"{x.GetType().Name}: {x.Message}");
        return string.Join(" <- ", parts);
    }
}

/// <summary>How much CPU other processes took while a run was timed: busy time of the whole
/// machine (/proc/stat) minus this process's own CPU time (/proc/self/stat), per second of wall time.</summary>
internal static class Contention
{
    /// <summary>Other work below this many cores during both runs of a round counts as a clean round.</summary>
    public const double CleanThreshold = 0.15;
    private static readonly double TicksPerSecond = 100;  // USER_HZ on Linux

    public static (T Result, double OtherCores) Measure<T>(Func<T> run)
    {
        var (machine0, own0) = Sample();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        T result = run();
        double seconds = clock.Elapsed.TotalSeconds;
        var (machine1, own1) = Sample();
        if (machine0 < 0 || machine1 < 0 || seconds <= 0) return (result, 0);
        // Two ticks of slack: the machine and the process are sampled at 10 ms granularity.
        double other = (machine1 - machine0 - (own1 - own0) - 2) / TicksPerSecond / seconds;
        return (result, Math.Max(0, other));
    }

    private static (long Machine, long Own) Sample()
    {
        try
        {
            // cpu  user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
            string[] cpu = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long busy = 0;
            for (int i = 1; i < Math.Min(cpu.Length, 9); i++)
                if (i != 4 && i != 5) busy += long.Parse(cpu[i], System.Globalization.CultureInfo.InvariantCulture);
            string self = File.ReadAllText("/proc/self/stat");
            string[] fields = self[(self.LastIndexOf(')') + 2)..].Split(' ');
            // After the command name: state is field 3, utime field 14, stime field 15.
            long own = long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
            return (busy, own);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return (-1, -1);
        }
    }
}

internal static class Stats
{
    public static double? Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return null;
        var sorted = values.OrderBy(v => v).ToArray();
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>The 1-minute load average (Linux), or null.</summary>
    public static double? LoadAverage()
    {
        try
        {
            string text = File.ReadAllText("/proc/loadavg");
            return double.Parse(text.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    public static int CommonPrefix(int[] a, int[] b)
    {
        int n = 0;
        while (n < a.Length && n < b.Length && a[n] == b[n]) n++;
        return n;
    }
}
