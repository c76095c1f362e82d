// BenchCommand.cs: `sharpinfer bench`: prefill and decode throughput of one sequence on a
// model, with the weight bandwidth a decode step achieves; with --concurrency, the batching
// engine under C concurrent requests (requests/s, output tokens/s, time to first token and
// inter-token latency percentiles). Figures, not a test.
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using SharpInfer.Engine;
using SharpInfer.Llama;

namespace SharpInfer.Cli.Commands;

internal static class BenchCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var common = new CommonOptions();
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length for the prefill measurement.", DefaultValueFactory = _ => 128 };
        var genTokens = new Option<int>("--gen-tokens") { Description = "Decode steps to time.", DefaultValueFactory = _ => 32 };
        var repeats = new Option<int>("--repeats") { Description = "Repetitions; the median is reported.", DefaultValueFactory = _ => 3 };
        var concurrency = new Option<int?>("--concurrency") { Description = "Engine mode: keep this many requests in flight (omit for the single-sequence benchmark)." };
        var promptLen = new Option<int>("--prompt-len") { Description = "Engine mode: prompt tokens per request.", DefaultValueFactory = _ => 128 };
        var genLen = new Option<int>("--gen-len") { Description = "Engine mode: tokens generated per request (EOS ignored).", DefaultValueFactory = _ => 32 };
        var sharedPrefix = new Option<int>("--shared-prefix") { Description = "Engine mode: leading prompt tokens every request shares (prefix caching).", DefaultValueFactory = _ => 0 };
        var requests = new Option<int?>("--requests") { Description = "Engine mode: requests in total (default: the concurrency)." };
        var limits = new Option<string?>("--limits")
        {
            Description = "This machine's limits as written by `perf/machine-limits --json`: adds model bandwidth utilization " +
                          "(weight and KV bytes read per decode step x steps/s / measured read bandwidth) and prefill model FLOPs " +
                          "utilization (against the peak of the instructions the matmuls use).",
        };

        var command = new Command("bench", "Measure prefill and decode tokens/s of one sequence (median of repeats), " +
                                           "or with --concurrency the batching engine's throughput and latency.");
        common.AddTo(command);
        command.Options.Add(promptTokens);
        command.Options.Add(genTokens);
        command.Options.Add(repeats);
        command.Options.Add(concurrency);
        command.Options.Add(promptLen);
        command.Options.Add(genLen);
        command.Options.Add(sharedPrefix);
        command.Options.Add(requests);
        command.Options.Add(limits);

        command.SetAction(parse =>
        {
            try
            {
                if (parse.GetValue(concurrency) is int inFlight)
                {
                    var settings = new EngineBenchSettings(inFlight, parse.GetValue(requests) ?? inFlight, parse.GetValue(promptLen), parse.GetValue(genLen), parse.GetValue(sharedPrefix));
                    settings.Validate();
                    using var engineModel = common.Load(parse, stderr);
                    var report = RunEngineAsync(engineModel, settings).GetAwaiter().GetResult();
                    WriteEngineReport(report, engineModel, settings, parse.GetValue(common.Json), stdout);
                    return ExitCodes.Ok;
                }
                int nPrompt = parse.GetValue(promptTokens), nGen = parse.GetValue(genTokens), nRep = parse.GetValue(repeats);
                if (nPrompt < 1 || nGen < 1 || nRep < 1) throw new ArgumentException("--prompt-tokens, --gen-tokens and --repeats must be >= 1");
                var machine = parse.GetValue(limits) is { } limitsPath ? MachineLimits.Read(limitsPath) : null;  // before any work
                using var loaded = common.Load(parse, stderr);
                var model = loaded.Model;
                int vocab = model.VocabSize;
                if (nPrompt + nGen > model.Config.MaxContext)
                    throw new ArgumentException($"--prompt-tokens + --gen-tokens exceed the context of {model.Config.MaxContext}");

                // A fixed pseudo-random prompt, so every run and every runtime sees the same ids.
                var rng = new Random(1234);
                int[] prompt = new int[nPrompt];
                prompt[0] = loaded.Checkpoint.Tokenizer.BosId;
                for (int i = 1; i < nPrompt; i++) prompt[i] = rng.Next(3, vocab);

                var prefill = new List<double>();
                var decode = new List<double>();
                float[] logits = new float[vocab];
                using var cache = model.CreateCache(nPrompt + nGen);
                for (int r = 0; r < nRep + 1; r++)  // the first round warms up and is dropped
                {
                    cache.Clear();
                    var clock = Stopwatch.StartNew();
                    model.Forward(prompt, cache, logits);
                    double prefillSeconds = clock.Elapsed.TotalSeconds;
                    clock.Restart();
                    for (int g = 0; g < nGen; g++)
                        model.Forward([Sampler.Argmax(logits)], cache, logits);
                    double decodeSeconds = clock.Elapsed.TotalSeconds;
                    if (r == 0) continue;
                    prefill.Add(nPrompt / prefillSeconds);
                    decode.Add(nGen / decodeSeconds);
                }
                double prefillRate = Median(prefill), decodeRate = Median(decode);
                long weightBytes = DecodeWeights(loaded).Bytes;
                double weightGbPerSecond = weightBytes * decodeRate / 1e9;
                // Bytes a decode step reads (weights, and K/V at the mean decode context) and the
                // FLOPs of a prefill token (at the mean prefill context).
                double decodeBytes = weightBytes + KvBytesPerToken(model.Config, cache.DType) * (nPrompt + nGen / 2.0);
                double prefillFlops = FlopsPerToken(loaded, nPrompt / 2.0, lmHeadShare: 1.0 / nPrompt);  // logits of the last position only
                string peakName = PeakFor(loaded);
                double? bandwidthUtilization = machine?.ReadGbPerSecond is double bw ? decodeBytes * decodeRate / 1e9 / bw : null;
                double? flopsUtilization = machine?.Peak(peakName) is double peak ? prefillFlops * prefillRate / 1e9 / peak : null;
                var c = model.Config;
                string modelName = Path.GetFileName(loaded.Checkpoint.SourcePath.TrimEnd('/'));

                if (parse.GetValue(common.Json))
                {
                    CliJson.WriteObject(stdout, w =>
                    {
                        w.WriteString("model", loaded.Checkpoint.SourcePath);
                        w.WriteString("backend", loaded.Backend.Kind.ToString().ToLowerInvariant());
                        w.WriteNumber("threads", loaded.Backend.Threads);
                        w.WriteNumber("prompt_tokens", nPrompt);
                        w.WriteNumber("gen_tokens", nGen);
                        w.WriteNumber("repeats", nRep);
                        w.WriteNumber("load_seconds", Math.Round(loaded.LoadSeconds, 3));
                        w.WriteNumber("prefill_tokens_per_second", Math.Round(prefillRate, 2));
                        w.WriteNumber("decode_tokens_per_second", Math.Round(decodeRate, 2));
                        w.WriteNumber("weight_bytes", weightBytes);
                        w.WriteNumber("decode_weight_gb_per_second", Math.Round(weightGbPerSecond, 3));
                        w.WriteNumber("decode_bytes_per_token", Math.Round(decodeBytes));
                        w.WriteNumber("prefill_gflops", Math.Round(prefillFlops * prefillRate / 1e9, 2));
                        if (machine is not null)
                        {
                            w.WriteNumber("machine_read_gb_per_second", machine.ReadGbPerSecond ?? 0);
                            if (bandwidthUtilization is double mbu) w.WriteNumber("decode_model_bandwidth_utilization", Math.Round(mbu, 3));
                            w.WriteString("peak", peakName);
                            w.WriteNumber("peak_gflops", machine.Peak(peakName) ?? 0);
                            if (flopsUtilization is double mfu) w.WriteNumber("prefill_model_flops_utilization", Math.Round(mfu, 3));
                        }
                    });
                }
                else
                {
                    stdout.WriteLine($"model    {modelName}: {c.NumLayers} layers, hidden {c.HiddenSize}, vocab {c.VocabSize}, {weightBytes / 1e6:F1} MB of weights");
                    stdout.WriteLine($"backend  {loaded.Backend.Kind.ToString().ToLowerInvariant()}, {loaded.Backend.Threads} threads");
                    stdout.WriteLine($"load     {loaded.LoadSeconds,10:F2} s        (map, check, repack the weights)");
                    stdout.WriteLine($"prefill  {prefillRate,10:F1} tokens/s  ({nPrompt} tokens, median of {nRep})");
                    stdout.WriteLine($"decode   {decodeRate,10:F1} tokens/s  ({nGen} steps, median of {nRep}; {weightGbPerSecond:F2} GB/s of weights)");
                    if (bandwidthUtilization is double mbu)
                        stdout.WriteLine($"MBU      {mbu * 100,9:F1} %    of {machine!.ReadGbPerSecond:F1} GB/s measured ({decodeBytes / 1e6:F1} MB of weights and K/V per step)");
                    if (flopsUtilization is double mfu)
                        stdout.WriteLine($"MFU      {mfu * 100,9:F1} %    of {machine!.Peak(peakName):F0} GFLOP/s {peakName} (prefill {prefillFlops * prefillRate / 1e9:F1} GFLOP/s)");
                }
                return ExitCodes.Ok;
            }
            catch (Exception e)
            {
                return CliApp.Report(e, stderr);
            }
        });
        return command;
    }

    /// <summary>
    /// What one decode token reads and multiplies: every tensor's bytes except the token
    /// embedding table (a decode step reads one row of it; counted when tied to the LM head, which
    /// reads all of it), and the element count of the 2-D weights a token is multiplied by.
    /// </summary>
    private static (long Bytes, long MatmulWeights) DecodeWeights(LoadedModel loaded)
    {
        var checkpoint = loaded.Checkpoint;
        bool tied = loaded.Model.Config.TieWordEmbeddings && !checkpoint.TensorNames.Contains(SharpInfer.Models.LlamaTensorNames.Output);
        long bytes = 0, weights = 0;
        foreach (string name in checkpoint.TensorNames)
        {
            var tensor = checkpoint.GetTensor(name);
            if (name == SharpInfer.Models.LlamaTensorNames.TokenEmbedding && !tied) continue;
            bytes += tensor.ByteLength;
            if (tensor.Shape.Length == 2) weights += tensor.Shape[0] * tensor.Shape[1];
        }
        return (bytes, weights);
    }

    /// <summary>
    /// FLOPs of one token's forward at context length <paramref name="context"/>: 2 per weight of
    /// every matmul, plus attention's Q.K and P.V (2 x 2 x heads x head_dim per cached token per
    /// layer). Norms, rope and activations are left out (well under 1% at Llama shapes).
    /// </summary>
    /// <param name="lmHeadShare">The fraction of tokens whose logits are computed (1 in decode; a
    /// prefill computes the last position's only).</param>
    private static double FlopsPerToken(LoadedModel loaded, double context, double lmHeadShare = 1.0)
    {
        var c = loaded.Model.Config;
        double lmHead = (double)c.VocabSize * c.HiddenSize;
        return 2.0 * (DecodeWeights(loaded).MatmulWeights - lmHead + lmHeadShare * lmHead) + 4.0 * c.NumLayers * c.NumHeads * c.HeadDim * context;
    }

    /// <summary>K and V bytes one token occupies in the cache, over all layers (int8: plus its scales).</summary>
    private static double KvBytesPerToken(SharpInfer.Models.LlamaConfig c, KvCacheDType dtype)
    {
        double perHead = dtype switch
        {
            KvCacheDType.F32 => 4.0 * c.HeadDim,
            KvCacheDType.Int8 => c.HeadDim + 4.0,
            _ => 2.0 * c.HeadDim,
        };
        return 2.0 * c.NumLayers * c.NumKvHeads * perHead;
    }

    /// <summary>
    /// The peak the matmuls are judged against: int8 dot products (VNNI) when any weight runs with
    /// int8 activations, else f32 FMA (f16/bf16 weights convert to f32 in registers).
    /// </summary>
    private static string PeakFor(LoadedModel loaded)
    {
        var checkpoint = loaded.Checkpoint;
        bool int8 = checkpoint.TensorNames.Any(n => checkpoint.GetTensor(n).Quantized?.Activations is SharpInfer.Quantization.QuantActivations.Int8
                                                                                                    or SharpInfer.Quantization.QuantActivations.Int8Block32);
        return int8 ? "int8_vnni_avx512" : "f32_fma_avx512";
    }

    /// <summary>The figures of `perf/machine-limits --json` the bench uses.</summary>
    private sealed record MachineLimits(double? ReadGbPerSecond, Dictionary<string, double> Peaks)
    {
        public double? Peak(string name) => Peaks.TryGetValue(name, out double v) ? v : null;

        public static MachineLimits Read(string path)
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(path));
                var root = doc.RootElement;
                double? read = root.TryGetProperty("memory_read_gb_per_s", out var mem) && mem.TryGetProperty("all_threads", out var all)
                               && all.ValueKind == JsonValueKind.Number ? all.GetDouble() : null;
                var peaks = new Dictionary<string, double>();
                if (root.TryGetProperty("peak", out var list) && list.ValueKind == JsonValueKind.Array)
                {
                    foreach (var item in list.EnumerateArray())
                    {
                        if (item.TryGetProperty("name", out var name) && item.TryGetProperty("all_threads", out var value) && value.ValueKind == JsonValueKind.Number)
                            peaks[name.GetString() ?? ""] = value.GetDouble();
                    }
                }
                return new MachineLimits(read, peaks);
            }
            catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException or InvalidOperationException)
            {
                throw new ArgumentException($"--limits {path}: not a perf/machine-limits --json file ({e.Message})", e);
            }
        }
    }

    private sealed record EngineBenchSettings(int Concurrency, int Requests, int PromptLength, int GenLength, int SharedPrefix)
    {
        public void Validate()
        {
            if (Concurrency < 1 || Requests < 1) throw new ArgumentException("--concurrency and --requests must be >= 1");
            if (PromptLength < 1 || GenLength < 1) throw new ArgumentException("--prompt-len and --gen-len must be >= 1");
            if (SharedPrefix < 0 || SharedPrefix > PromptLength) throw new ArgumentException("--shared-prefix must be in [0, --prompt-len]");
        }
    }

    /// <param name="DecodeTokens">Tokens produced in the full-batch decode window: from the moment
    /// the last of the first Concurrency requests produced its first token (every prefill done) to
    /// the moment the first request finished, when every step decodes one token for each of the
    /// Concurrency requests and nothing else.</param>
    /// <param name="DecodeSeconds">That window's length (0 when it is empty).</param>
    private sealed record EngineBenchReport(double Seconds, long OutputTokens, List<double> TimeToFirstToken, List<double> InterTokenLatency,
                                            EngineStats Stats, int KvBlocks, long DecodeTokens, double DecodeSeconds);

    /// <summary>Keeps Concurrency greedy requests (EOS ignored) in flight until Requests have finished.</summary>
    private static async Task<EngineBenchReport> RunEngineAsync(LoadedModel loaded, EngineBenchSettings settings)
    {
        var model = loaded.Model;
        int vocab = model.VocabSize, p = settings.PromptLength, g = settings.GenLength;
        if (p + g > model.Config.MaxContext)
            throw new ArgumentException($"--prompt-len + --gen-len exceed the context of {model.Config.MaxContext}");
        int blockSize = LlamaModel.DefaultBlockSize;
        int blocksPerRequest = (p + g + blockSize - 1) / blockSize;
        int kvBlocks = settings.Concurrency * blocksPerRequest + 1;

        // Fixed pseudo-random prompts: the first SharedPrefix tokens are common to all requests.
        var rng = new Random(1234);
        int[] prefix = [loaded.Checkpoint.Tokenizer.BosId, .. Enumerable.Range(1, Math.Max(0, settings.SharedPrefix - 1)).Select(_ => rng.Next(3, vocab))];
        int[][] prompts = new int[settings.Requests][];
        for (int r = 0; r < settings.Requests; r++)
        {
            var prompt = new int[p];
            prompt[0] = loaded.Checkpoint.Tokenizer.BosId;
            for (int i = 1; i < p; i++) prompt[i] = i < settings.SharedPrefix ? prefix[i] : rng.Next(3, vocab);
            prompts[r] = prompt;
        }
        var parameters = SamplingParams.Greedy with { MaxTokens = g, IgnoreEos = true };

        using var engine = new InferenceEngine(model, loaded.Checkpoint.Tokenizer, new EngineOptions { KvBlocks = kvBlocks, BlockSize = blockSize });
        // Warm-up on unrelated tokens (so the prefix cache does not hold the shared prefix yet).
        var warmRng = new Random(99);
        int[] warm = [.. Enumerable.Range(0, Math.Min(p, 16)).Select(_ => warmRng.Next(3, vocab))];
        await foreach (var _ in engine.GenerateAsync(warm, parameters with { MaxTokens = Math.Min(g, 4) })) { }
        var baseline = engine.Stats;

        var ttft = new List<double>();
        var itl = new List<double>();
        long outputTokens = 0;
        var produced = new List<(int Request, long At, int Count)>();
        int next = -1;
        var clock = Stopwatch.StartNew();
        async Task Worker()
        {
            var localTtft = new List<double>();
            var localItl = new List<double>();
            var localProduced = new List<(int, long, int)>();
            long localTokens = 0;
            for (int r = Interlocked.Increment(ref next); r < settings.Requests; r = Interlocked.Increment(ref next))
            {
                long submitted = Stopwatch.GetTimestamp(), previous = 0;
                await foreach (var delta in engine.GenerateAsync(prompts[r], parameters).ConfigureAwait(false))
                {
                    // Engine-side timestamps: latency as produced, not as this loop happened to read it.
                    if (delta.TokenIds.Count == 0) continue;
                    if (previous == 0) localTtft.Add(Stopwatch.GetElapsedTime(submitted, delta.Timestamp).TotalSeconds);
                    else localItl.Add(Stopwatch.GetElapsedTime(previous, delta.Timestamp).TotalSeconds);
                    previous = delta.Timestamp;
                    localProduced.Add((r, delta.Timestamp, delta.TokenIds.Count));
                    localTokens += delta.TokenIds.Count;
                }
            }
            lock (ttft)
            {
                ttft.AddRange(localTtft);
                itl.AddRange(localItl);
                produced.AddRange(localProduced);
                outputTokens += localTokens;
            }
        }
        await Task.WhenAll(Enumerable.Range(0, settings.Concurrency).Select(_ => Task.Run(Worker)));
        double seconds = clock.Elapsed.TotalSeconds;
        var end = engine.Stats;
        var delta = end with
        {
            Preemptions = end.Preemptions - baseline.Preemptions,
            PrefixCacheQueryTokens = end.PrefixCacheQueryTokens - baseline.PrefixCacheQueryTokens,
            PrefixCacheHitTokens = end.PrefixCacheHitTokens - baseline.PrefixCacheHitTokens,
            PromptTokensComputed = end.PromptTokensComputed - baseline.PromptTokensComputed,
            PromptTokensCached = end.PromptTokensCached - baseline.PromptTokensCached,
            GeneratedTokens = end.GeneratedTokens - baseline.GeneratedTokens,
            Steps = end.Steps - baseline.Steps,
        };
        var (decodeTokens, decodeSeconds) = FullBatchDecodeWindow(produced, settings.Concurrency);
        return new EngineBenchReport(seconds, outputTokens, ttft, itl, delta, kvBlocks, decodeTokens, decodeSeconds);
    }

    /// <summary>Tokens and seconds of the full-batch decode window (see EngineBenchReport).</summary>
    private static (long Tokens, double Seconds) FullBatchDecodeWindow(List<(int Request, long At, int Count)> produced, int concurrency)
    {
        var byRequest = produced.GroupBy(p => p.Request).ToDictionary(g => g.Key, g => (First: g.Min(p => p.At), Last: g.Max(p => p.At)));
        if (byRequest.Count == 0) return (0, 0);
        long start = byRequest.Where(kv => kv.Key < concurrency).Max(kv => kv.Value.First);
        long end = byRequest.Min(kv => kv.Value.Last);
        if (end <= start) return (0, 0);
        long tokens = produced.Where(p => p.At > start && p.At <= end).Sum(p => (long)p.Count);
        return (tokens, Stopwatch.GetElapsedTime(start, end).TotalSeconds);
    }

    private static void WriteEngineReport(EngineBenchReport r, LoadedModel loaded, EngineBenchSettings s, bool json, TextWriter stdout)
    {
        double requestsPerSecond = s.Requests / r.Seconds, tokensPerSecond = r.OutputTokens / r.Seconds;
        // Aggregate decode rate while every in-flight request decodes (no prefill in those steps).
        double decodePerSecond = r.DecodeSeconds > 0 ? r.DecodeTokens / r.DecodeSeconds : 0;
        double tokensPerStep = r.Stats.Steps == 0 ? 0 : (double)(r.Stats.GeneratedTokens + r.Stats.PromptTokensComputed) / r.Stats.Steps;
        double Ms(List<double> values, double q) => Math.Round(Percentile(values, q) * 1000, 3);
        // Decode arithmetic rate: decode tokens/s x FLOPs per token at the mean decode context.
        double flopsPerToken = FlopsPerToken(loaded, s.PromptLength + s.GenLength / 2.0);
        if (json)
        {
            CliJson.WriteObject(stdout, w =>
            {
                w.WriteString("mode", "engine");
                w.WriteString("model", loaded.Checkpoint.SourcePath);
                w.WriteString("backend", loaded.Backend.Kind.ToString().ToLowerInvariant());
                w.WriteNumber("threads", loaded.Backend.Threads);
                w.WriteNumber("concurrency", s.Concurrency);
                w.WriteNumber("requests", s.Requests);
                w.WriteNumber("prompt_len", s.PromptLength);
                w.WriteNumber("gen_len", s.GenLength);
                w.WriteNumber("shared_prefix", s.SharedPrefix);
                w.WriteNumber("kv_blocks", r.KvBlocks);
                w.WriteNumber("load_seconds", Math.Round(loaded.LoadSeconds, 3));
                w.WriteNumber("seconds", Math.Round(r.Seconds, 4));
                w.WriteNumber("requests_per_second", Math.Round(requestsPerSecond, 3));
                w.WriteNumber("output_tokens_per_second", Math.Round(tokensPerSecond, 2));
                w.WriteNumber("decode_tokens_per_second", Math.Round(decodePerSecond, 2));
                w.WriteNumber("ttft_ms_p50", Ms(r.TimeToFirstToken, 0.50));
                w.WriteNumber("ttft_ms_p99", Ms(r.TimeToFirstToken, 0.99));
                w.WriteNumber("itl_ms_p50", Ms(r.InterTokenLatency, 0.50));
                w.WriteNumber("itl_ms_p99", Ms(r.InterTokenLatency, 0.99));
                w.WriteNumber("steps", r.Stats.Steps);
                w.WriteNumber("tokens_per_step", Math.Round(tokensPerStep, 2));
                w.WriteNumber("prompt_tokens_computed", r.Stats.PromptTokensComputed);
                w.WriteNumber("prompt_tokens_cached", r.Stats.PromptTokensCached);
                w.WriteNumber("preemptions", r.Stats.Preemptions);
                w.WriteNumber("decode_gflop_per_token", Math.Round(flopsPerToken / 1e9, 4));
                w.WriteNumber("decode_gflops", Math.Round(decodePerSecond * flopsPerToken / 1e9, 2));
            });
            return;
        }
        var c = loaded.Model.Config;
        stdout.WriteLine($"model      {Path.GetFileName(loaded.Checkpoint.SourcePath.TrimEnd('/'))}: {c.NumLayers} layers, hidden {c.HiddenSize}, vocab {c.VocabSize}");
        stdout.WriteLine($"backend    {loaded.Backend.Kind.ToString().ToLowerInvariant()}, {loaded.Backend.Threads} threads; model loaded in {loaded.LoadSeconds:F2} s");
        stdout.WriteLine($"workload   {s.Requests} requests, {s.Concurrency} in flight, prompt {s.PromptLength} (shared {s.SharedPrefix}), generate {s.GenLength}");
        stdout.WriteLine($"throughput {requestsPerSecond,10:F2} requests/s   {tokensPerSecond,10:F1} output tokens/s   ({r.Seconds:F2} s)");
        stdout.WriteLine($"decode     {decodePerSecond,10:F1} tokens/s with all {s.Concurrency} in flight decoding ({decodePerSecond * flopsPerToken / 1e9:F1} GFLOP/s at {flopsPerToken / 1e9:F2} GFLOP per token)");
        stdout.WriteLine($"ttft       p50 {Ms(r.TimeToFirstToken, 0.5),9:F2} ms   p99 {Ms(r.TimeToFirstToken, 0.99),9:F2} ms");
        stdout.WriteLine($"itl        p50 {Ms(r.InterTokenLatency, 0.5),9:F2} ms   p99 {Ms(r.InterTokenLatency, 0.99),9:F2} ms");
        stdout.WriteLine($"engine     {r.Stats.Steps} steps ({tokensPerStep:F1} tokens/step), prompt tokens {r.Stats.PromptTokensComputed} computed / {r.Stats.PromptTokensCached} cached, {r.Stats.Preemptions} preemptions");
    }

    /// <summary>Nearest-rank percentile (0 for no values).</summary>
    private static double Percentile(List<double> values, double q)
    {
        if (values.Count == 0) return 0;
        var sorted = values.Order().ToArray();
        int rank = (int)Math.Ceiling(q * sorted.Length) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        int mid = values.Count / 2;
        return values.Count % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    }
}
