// BenchCommand.cs: `sharpinfer bench`: prefill and decode throughput of one sequence on a
// model, with the weight bandwidth a decode step achieves. Figures, not a test.
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using SharpInfer.Engine;

namespace SharpInfer.Cli.Commands;

internal static class BenchCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var common = new CommonOptions();
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "Prompt length for the prefill measurement.", DefaultValueFactory = _ => 128 };
        var genTokens = new Option<int>("--gen-tokens") { Description = "Decode steps to time.", DefaultValueFactory = _ => 32 };
        var repeats = new Option<int>("--repeats") { Description = "Repetitions; the median is reported.", DefaultValueFactory = _ => 3 };

        var command = new Command("bench", "Measure prefill and decode tokens/s of one sequence (median of repeats).");
        common.AddTo(command);
        command.Options.Add(promptTokens);
        command.Options.Add(genTokens);
        command.Options.Add(repeats);

        command.SetAction(parse =>
        {
            try
            {
                int nPrompt = parse.GetValue(promptTokens), nGen = parse.GetValue(genTokens), nRep = parse.GetValue(repeats);
                if (nPrompt < 1 || nGen < 1 || nRep < 1) throw new ArgumentException("--prompt-tokens, --gen-tokens and --repeats must be >= 1");
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
                long weightBytes = loaded.Checkpoint.TensorNames.Sum(n => loaded.Checkpoint.GetTensor(n).ByteLength);
                double weightGbPerSecond = weightBytes * decodeRate / 1e9;
                var c = model.Config;
                string modelName = Path.GetFileName(loaded.Checkpoint.SourcePath.TrimEnd('/'));

                if (parse.GetValue(common.Json))
                {
                    using var buffer = new MemoryStream();
                    using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
                    {
                        w.WriteStartObject();
                        w.WriteString("model", loaded.Checkpoint.SourcePath);
                        w.WriteString("backend", loaded.Backend.Kind.ToString().ToLowerInvariant());
                        w.WriteNumber("threads", loaded.Backend.Threads);
                        w.WriteNumber("prompt_tokens", nPrompt);
                        w.WriteNumber("gen_tokens", nGen);
                        w.WriteNumber("repeats", nRep);
                        w.WriteNumber("prefill_tokens_per_second", Math.Round(prefillRate, 2));
                        w.WriteNumber("decode_tokens_per_second", Math.Round(decodeRate, 2));
                        w.WriteNumber("weight_bytes", weightBytes);
                        w.WriteNumber("decode_weight_gb_per_second", Math.Round(weightGbPerSecond, 3));
                        w.WriteEndObject();
                    }
                    stdout.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
                }
                else
                {
                    stdout.WriteLine($"model    {modelName}: {c.NumLayers} layers, hidden {c.HiddenSize}, vocab {c.VocabSize}, {weightBytes / 1e6:F1} MB of weights");
                    stdout.WriteLine($"backend  {loaded.Backend.Kind.ToString().ToLowerInvariant()}, {loaded.Backend.Threads} threads");
                    stdout.WriteLine($"prefill  {prefillRate,10:F1} tokens/s  ({nPrompt} tokens, median of {nRep})");
                    stdout.WriteLine($"decode   {decodeRate,10:F1} tokens/s  ({nGen} steps, median of {nRep}; {weightGbPerSecond:F2} GB/s of weights)");
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

    private static double Median(List<double> values)
    {
        values.Sort();
        int mid = values.Count / 2;
        return values.Count % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    }
}
