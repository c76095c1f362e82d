// Options.cs: the command line of sharpinfer-peer (plain flags; see Usage).
using System.Globalization;

namespace SharpInfer.PeerComparison;

internal sealed class Options
{
    public const string Usage = """
        sharpinfer-peer: SharpInfer vs llama.cpp (LLamaSharp 0.30.0, CPU backend) on the same GGUF files.
        Usage: sharpinfer-peer [--model PATH]... [--threads N] [--rounds N] [--prompt-tokens P]
                               [--gen-tokens G] [--concurrency 4,16] [--concurrent-prompt-tokens N]
                               [--kv f16|f32] [--llama-kv-unified] [--machine-limits FILE]
                               [--out FILE] [--quick] [--verbose]
          --model PATH   a GGUF file (repeatable). Default: stories260K from ../shared/models and
                         build/models/tinyllama-1.1b-{f16,q8_0,q4_0}.gguf, those present.
          --threads N    CPU threads for both runtimes (default: all hardware threads).
          --rounds N     timed rounds; each round runs every case on SharpInfer, then on llama.cpp (A B A B ...).
                         One extra warm-up round first is not counted. Default 5.
          --prompt-tokens P  prompt of the batch-1 runs (default 128).
          --gen-tokens G     decode steps per run (default: 32, or 256 for models under 64 MB).
          --concurrency LIST sequence counts decoding together (default 4,16).
          --concurrent-prompt-tokens N  prompt of each concurrent sequence (default 16).
          --kv f16|f32   KV cache type on both sides (default f16, llama.cpp's default).
          --llama-kv-unified  one KV stream shared by all sequences in llama.cpp (default: one per sequence).
          --machine-limits FILE  JSON from perf/machine-limits --json, copied into the results.
          --out FILE     results JSON (default: perf/results/peer-<yyyymmdd>.json under the repo root).
          --quick        rounds 2, prompt 32, gen 8: a smoke run of the harness, not figures.
        """;

    public List<string> Models { get; } = [];
    public int Threads { get; set; } = Environment.ProcessorCount;
    public int Rounds { get; set; } = 5;
    public int PromptTokens { get; set; } = 128;
    public int? GenTokens { get; set; }
    public int[] Concurrency { get; set; } = [4, 16];
    public int ConcurrentPromptTokens { get; set; } = 16;
    public string Kv { get; set; } = "f16";
    public bool LlamaKvUnified { get; set; }
    public string? MachineLimits { get; set; }
    public string? Out { get; set; }
    public bool Verbose { get; set; }

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{a} needs a value");
            int NextInt(int min)
            {
                string text = Next();
                if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int v) || v < min)
                    throw new ArgumentException($"{a} needs an integer >= {min} (got '{text}')");
                return v;
            }
            switch (a)
            {
                case "--model": o.Models.Add(Next()); break;
                case "--threads": o.Threads = NextInt(1); break;
                case "--rounds": o.Rounds = NextInt(1); break;
                case "--prompt-tokens": o.PromptTokens = NextInt(1); break;
                case "--gen-tokens": o.GenTokens = NextInt(1); break;
                case "--concurrent-prompt-tokens": o.ConcurrentPromptTokens = NextInt(1); break;
                case "--concurrency":
                    o.Concurrency = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                        .Select(t => int.TryParse(t, CultureInfo.InvariantCulture, out int v) && v >= 1 ? v
                            : throw new ArgumentException($"--concurrency needs integers >= 1 (got '{t}')")).ToArray();
                    break;
                case "--kv":
                    o.Kv = Next();
                    if (o.Kv is not ("f16" or "f32")) throw new ArgumentException($"--kv is f16 or f32 (got '{o.Kv}')");
                    break;
                case "--llama-kv-unified": o.LlamaKvUnified = true; break;
                case "--machine-limits": o.MachineLimits = Next(); break;
                case "--out": o.Out = Next(); break;
                case "--quick": o.Rounds = 2; o.PromptTokens = 32; o.GenTokens = 8; break;
                case "--verbose": o.Verbose = true; break;
                case "-h" or "--help": throw new HelpRequested();
                default: throw new ArgumentException($"unknown option {a}");
            }
        }
        return o;
    }

    /// <summary>Decode steps per run for a model of <paramref name="weightBytes"/>: enough for tiny models to time.</summary>
    public int GenTokensFor(long weightBytes) => GenTokens ?? (weightBytes < (64L << 20) ? 256 : 32);
}

internal sealed class HelpRequested : Exception;
