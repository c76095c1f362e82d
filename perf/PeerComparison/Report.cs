// Report.cs: the table printed after a run and the results JSON (perf/results/peer-<date>.json).
using System.Globalization;
using System.Text.Json;

namespace SharpInfer.PeerComparison;

internal static class Report
{
    private static string F(double? v, string format = "F1") => v is double d ? d.ToString(format, CultureInfo.InvariantCulture) : "-";

    public static void PrintTable(TextWriter w, MachineInfo m, LlamaLog log, Options o, List<ModelResult> results)
    {
        w.WriteLine();
        w.WriteLine($"machine   {m.Cpu}, {m.Cores} cores, {m.MemoryMiB} MiB; {m.DotNet}");
        if (m.BandwidthAllThreads is double bw) w.WriteLine($"limits    memory read {bw:F1} GB/s (all threads, perf/machine-limits)");
        w.WriteLine($"runtimes  SharpInfer: {m.SharpInferNative}");
        w.WriteLine($"          llama.cpp: LLamaSharp 0.30.0 + LLamaSharp.Backend.Cpu 0.30.0, {log.LoadedLibrary ?? "(not loaded)"}");
        w.WriteLine($"settings  {o.Threads} threads on both, KV cache {o.Kv}, greedy, token ids fed directly; " +
                    $"{o.Rounds} rounds alternating SharpInfer / llama.cpp after one warm-up round; medians");
        foreach (var r in results)
        {
            w.WriteLine();
            w.WriteLine($"{r.Name}  ({r.WeightBytes / 1e9:F3} GB of weights; {r.Architecture})");
            if (r.Cases.Count > 0)
            {
                w.WriteLine($"  prompt {r.PromptTokens} tokens, {r.GenTokens} decode steps per run, concurrent sequences start from {r.ConcurrentPromptTokens}-token prompts");
                w.WriteLine($"  {"case",-34} {"SharpInfer",10} {"llama.cpp",10} {"ratio",7} {"paired",7} | {"clean",5} {"SharpInfer",10} {"llama.cpp",10} {"ratio",7} | {"target",7}");
                foreach (var c in r.Cases)
                {
                    string target = c.Target is double t ? $">={t:F1}x" : "";
                    double? judged = c.CleanRounds.Count >= 3 ? c.CleanRatio : null;
                    string verdict = c.Target is double tt ? judged is double ratio ? (ratio >= tt ? " met" : " not met") : " (too few clean rounds)" : "";
                    w.WriteLine($"  {c.Title,-34} {F(c.OursMedian),10} {F(c.TheirsMedian),10} {F(c.Ratio, "F2") + "x",7} {F(c.PairedRatio, "F2") + "x",7} | " +
                                $"{c.CleanRounds.Count,5} {F(c.CleanOursMedian),10} {F(c.CleanTheirsMedian),10} {F(c.CleanRatio, "F2") + "x",7} | {target,7}{verdict}");
                }
                if (m.BandwidthAllThreads is double bandwidth && r.Cases.FirstOrDefault(c => c.Key == "decode_b1") is { } d)
                    w.WriteLine($"  decode weight bandwidth: SharpInfer {F(d.OursMedian * r.WeightBytes / 1e9, "F1")} GB/s, llama.cpp {F(d.TheirsMedian * r.WeightBytes / 1e9, "F1")} GB/s " +
                                $"(of {bandwidth:F1} GB/s measured)");
                foreach (var (key, agreeing, total) in r.Agreement)
                    w.WriteLine($"  greedy tokens identical ({key}, warm-up round): {agreeing}/{total}");
                if (r.LoadAverages.Count > 0)
                    w.WriteLine($"  load average (1 min) after each round: {string.Join(", ", r.LoadAverages.Select(l => l.ToString("F2", CultureInfo.InvariantCulture)))} on {m.Cores} cores" +
                                (r.LoadAverages.Max() > m.Cores + 0.5 ? "  <- other work shared the CPU: treat these figures as noisy" : ""));
            }
            foreach (string e in r.Errors) w.WriteLine($"  ! {e}");
        }
        w.WriteLine();
        w.WriteLine("tokens/s, medians over all rounds; ratio = SharpInfer / llama.cpp; paired = median of the per-round ratios of back-to-back runs.");
        w.WriteLine($"clean = rounds in which other processes used < {Contention.CleanThreshold} cores during both runs, and the medians over those rounds;");
        w.WriteLine("targets are judged on the clean medians (at least 3 clean rounds), since llama.cpp's OpenMP barriers suffer far more than SharpInfer when another process takes a core.");
    }

    public static void WriteJson(string path, MachineInfo m, LlamaLog log, Options o, List<ModelResult> results)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var stream = File.Create(path);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        w.WriteStartObject();
        w.WriteString("date", DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));
        w.WriteString("tool", "perf/PeerComparison (sharpinfer-peer)");

        w.WriteStartObject("machine");
        w.WriteString("cpu", m.Cpu);
        w.WriteNumber("cores", m.Cores);
        w.WriteNumber("memory_mib", m.MemoryMiB);
        w.WriteString("os", m.Os);
        w.WriteString("dotnet", m.DotNet);
        if (m.Limits is JsonElement limits)
        {
            w.WritePropertyName("limits");
            limits.WriteTo(w);
        }
        else if (m.LimitsError is not null) w.WriteString("limits_error", m.LimitsError);
        else w.WriteNull("limits");
        w.WriteEndObject();

        w.WriteStartObject("runtimes");
        w.WriteString("sharpinfer", m.SharpInferNative);
        w.WriteStartObject("llama_cpp");
        w.WriteString("packages", "LLamaSharp 0.30.0, LLamaSharp.Backend.Cpu 0.30.0");
        w.WriteString("library", log.LoadedLibrary);
        w.WriteString("system_info", results.Any(r => r.LlamaLoaded) ? LlamaLog.SystemInfo() : null);
        w.WriteStartArray("log_notes");
        foreach (string line in log.Notes) w.WriteStringValue(line);
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();

        w.WriteStartObject("settings");
        w.WriteNumber("threads", o.Threads);
        w.WriteNumber("rounds", o.Rounds);
        w.WriteString("kv_cache", o.Kv);
        w.WriteString("llama_kv", o.LlamaKvUnified ? "unified (one stream for all sequences)" : "one stream per sequence");
        w.WriteString("sampling", "greedy (argmax over the full logits row, same function on both sides)");
        w.WriteString("order", "one warm-up round (dropped), then per round and per case: SharpInfer run, then llama.cpp run");
        w.WriteString("sharpinfer_path", "LlamaModel.Forward(tokens, KvCache) for batch 1; LlamaModel.Forward(BatchPlan, PagedKvCache) for concurrent sequences");
        w.WriteString("llama_cpp_path", "llama_decode on an llama_batch of token ids; llama_get_logits_ith");
        w.WriteEndObject();

        w.WriteStartArray("models");
        foreach (var r in results)
        {
            w.WriteStartObject();
            w.WriteString("model", r.Path);
            w.WriteString("architecture", r.Architecture);
            w.WriteNumber("weight_bytes", r.WeightBytes);
            w.WriteNumber("prompt_tokens", r.PromptTokens);
            w.WriteNumber("decode_steps", r.GenTokens);
            w.WriteNumber("concurrent_prompt_tokens", r.ConcurrentPromptTokens);
            w.WriteStartArray("cases");
            foreach (var c in r.Cases)
            {
                w.WriteStartObject();
                w.WriteString("case", c.Key);
                w.WriteString("title", c.Title);
                w.WriteString("unit", "tokens/s");
                Side(w, "sharpinfer", c.Ours);
                Side(w, "llama_cpp", c.Theirs);
                Number(w, "ratio", c.Ratio, 3);
                Number(w, "paired_ratio", c.PairedRatio, 3);
                w.WriteStartArray("other_cpu_cores_per_round");
                foreach (double b in c.Busy) w.WriteNumberValue(Math.Round(b, 3));
                w.WriteEndArray();
                w.WriteNumber("clean_rounds", c.CleanRounds.Count);
                Number(w, "clean_sharpinfer_median", c.CleanOursMedian, 2);
                Number(w, "clean_llama_cpp_median", c.CleanTheirsMedian, 2);
                Number(w, "clean_ratio", c.CleanRatio, 3);
                Number(w, "target_ratio", c.Target, 2);
                if (c.Target is double t && c.CleanRounds.Count >= 3 && c.CleanRatio is double ratio) w.WriteBoolean("meets_target", ratio >= t);
                else if (c.Target is not null) w.WriteNull("meets_target");
                if (c.Key == "decode_b1" && r.WeightBytes > 0)
                {
                    Number(w, "sharpinfer_weight_gb_per_s", c.OursMedian * r.WeightBytes / 1e9, 2);
                    Number(w, "llama_cpp_weight_gb_per_s", c.TheirsMedian * r.WeightBytes / 1e9, 2);
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("greedy_agreement");
            foreach (var (key, agreeing, total) in r.Agreement)
            {
                w.WriteStartObject();
                w.WriteString("case", key);
                w.WriteNumber("identical_leading_tokens", agreeing);
                w.WriteNumber("tokens", total);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("load_average_1min_per_round");
            foreach (double l in r.LoadAverages) w.WriteNumberValue(l);
            w.WriteEndArray();
            w.WriteStartArray("errors");
            foreach (string e in r.Errors) w.WriteStringValue(e);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void Side(Utf8JsonWriter w, string name, List<double> runs)
    {
        w.WriteStartObject(name);
        Number(w, "median", Stats.Median(runs), 2);
        Number(w, "min", runs.Count > 0 ? runs.Min() : null, 2);
        Number(w, "max", runs.Count > 0 ? runs.Max() : null, 2);
        w.WriteStartArray("runs");
        foreach (double v in runs) w.WriteNumberValue(Math.Round(v, 2));
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void Number(Utf8JsonWriter w, string name, double? value, int digits)
    {
        if (value is double v) w.WriteNumber(name, Math.Round(v, digits));
        else w.WriteNull(name);
    }
}
