// LlamaCppRunner.cs: the llama.cpp side, through LLamaSharp: token ids go straight into
// llama_batch (no tokenizer), llama_decode runs the step, greedy picks from llama_get_logits_ith.
// Batch 1 uses a one-sequence context; N sequences share one context with n_seq_max = N.
using System.Diagnostics;
using System.Runtime.InteropServices;
using LLama;
using LLama.Common;
using LLama.Native;
using SharpInfer.Engine;

namespace SharpInfer.PeerComparison;

internal sealed class LlamaCppRunner : IPeerRunner
{
    private readonly LLamaWeights _weights;
    private readonly ModelParams _params;
    private LLamaContext? _single;
    private int _singleSize;

    public string Name => "llama.cpp";
    public int VocabSize { get; }
    public bool KvUnified { get; }

    public LlamaCppRunner(string path, int threads, GGMLType kvType, bool kvUnified)
    {
        KvUnified = kvUnified;
        _params = new ModelParams(path)
        {
            GpuLayerCount = 0,
            Threads = threads,
            BatchThreads = threads,
            TypeK = kvType,
            TypeV = kvType,
        };
        _weights = LLamaWeights.LoadFromFile(_params);
        VocabSize = _weights.Vocab.Count;
    }

    /// <summary>A context of at least <paramref name="cells"/> KV cells per sequence for <paramref name="sequences"/> sequences.</summary>
    private LLamaContext CreateContext(int cells, int sequences, int batch)
    {
        // Per-sequence KV streams (not unified) unless asked: each sequence then attends only to its own cells.
        uint perSequence = (uint)((cells + 255) / 256 * 256);
        var p = new ModelParams(_params.ModelPath)
        {
            GpuLayerCount = 0,
            Threads = _params.Threads,
            BatchThreads = _params.BatchThreads,
            TypeK = _params.TypeK,
            TypeV = _params.TypeV,
            ContextSize = perSequence * (uint)sequences,
            SeqMax = (uint)sequences,
            KVUnified = KvUnified,
            BatchSize = (uint)Math.Max(batch, 512),
            UBatchSize = (uint)Math.Max(batch, 512),
        };
        return _weights.CreateContext(p);
    }

    public SingleRun RunSingle(int[] prompt, int steps)
    {
        int size = prompt.Length + steps;
        if (_single is null || _singleSize < size)
        {
            _single?.Dispose();
            _single = CreateContext(size, 1, prompt.Length);
            _singleSize = size;
        }
        var ctx = _single.NativeHandle;
        ctx.MemoryClear(true);
        var batch = new LLamaBatch();
        var seq = (LLamaSeqId)0;
        int[] tokens = new int[steps];

        var clock = Stopwatch.StartNew();
        for (int i = 0; i < prompt.Length; i++) batch.Add((LLamaToken)prompt[i], i, seq, i == prompt.Length - 1);
        Check(ctx.Decode(batch));
        int next = Sampler.Argmax(ctx.GetLogitsIth(batch.TokenCount - 1));
        double prefill = clock.Elapsed.TotalSeconds;

        clock.Restart();
        for (int i = 0; i < steps; i++)
        {
            tokens[i] = next;
            batch.Clear();
            batch.Add((LLamaToken)next, prompt.Length + i, seq, true);
            Check(ctx.Decode(batch));
            next = Sampler.Argmax(ctx.GetLogitsIth(0));
        }
        double decode = clock.Elapsed.TotalSeconds;
        return new SingleRun(prefill, decode, tokens);
    }

    public IConcurrentSession PrepareConcurrent(int[][] prompts, int maxSteps) => new Session(this, prompts, maxSteps);

    internal static void Check(DecodeResult result)
    {
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode returned {result}");
    }

    /// <summary>llama.cpp's own description of the CPU features its build uses.</summary>
    public static string SystemInfo() => Marshal.PtrToStringAnsi(NativeApi.llama_print_system_info()) ?? "";

    public void Dispose()
    {
        _single?.Dispose();
        _weights.Dispose();
    }

    private sealed class Session : IConcurrentSession
    {
        private readonly LLamaContext _context;
        private readonly int[] _promptLengths, _firstTokens;
        private readonly LLamaBatch _batch = new();
        private readonly int _maxSteps;

        public Session(LlamaCppRunner owner, int[][] prompts, int maxSteps)
        {
            int n = prompts.Length, total = prompts.Sum(p => p.Length);
            _maxSteps = maxSteps;
            _context = owner.CreateContext(prompts.Max(p => p.Length) + maxSteps, n, total);
            _promptLengths = prompts.Select(p => p.Length).ToArray();
            _firstTokens = new int[n];
            var ctx = _context.NativeHandle;
            // Prefill every prompt in one batch (the batch size covers them all).
            int[] lastIndex = new int[n];
            for (int s = 0; s < n; s++)
            {
                for (int i = 0; i < prompts[s].Length; i++)
                    _batch.Add((LLamaToken)prompts[s][i], i, (LLamaSeqId)s, i == prompts[s].Length - 1);
                lastIndex[s] = _batch.TokenCount - 1;
            }
            Check(ctx.Decode(_batch));
            for (int s = 0; s < n; s++) _firstTokens[s] = Sampler.Argmax(ctx.GetLogitsIth(lastIndex[s]));
        }

        public ConcurrentRun Decode(int steps)
        {
            if (steps > _maxSteps) throw new ArgumentOutOfRangeException(nameof(steps));
            var ctx = _context.NativeHandle;
            int n = _promptLengths.Length;
            // Forget what an earlier run generated: keep positions [0, promptLength) of each sequence.
            for (int s = 0; s < n; s++) ctx.MemorySequenceRemove((LLamaSeqId)s, _promptLengths[s], -1);
            int[] next = (int[])_firstTokens.Clone();
            int[][] tokens = new int[n][];
            for (int s = 0; s < n; s++) tokens[s] = new int[steps];

            var clock = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++)
            {
                _batch.Clear();
                for (int s = 0; s < n; s++)
                {
                    tokens[s][i] = next[s];
                    _batch.Add((LLamaToken)next[s], _promptLengths[s] + i, (LLamaSeqId)s, true);
                }
                Check(ctx.Decode(_batch));
                for (int s = 0; s < n; s++) next[s] = Sampler.Argmax(ctx.GetLogitsIth(s));
            }
            return new ConcurrentRun(clock.Elapsed.TotalSeconds, tokens);
        }

        public void Dispose() => _context.Dispose();
    }
}
