// SharpInferRunner.cs: the SharpInfer side: the single-sequence Forward over a KvCache for
// batch 1, and the batched Forward(BatchPlan) over one shared PagedKvCache for N sequences.
using System.Diagnostics;
using SharpInfer.Backends;
using SharpInfer.Engine;
using SharpInfer.Llama;
using SharpInfer.Models;

namespace SharpInfer.PeerComparison;

internal sealed class SharpInferRunner : IPeerRunner
{
    private readonly ModelCheckpoint _checkpoint;
    private readonly ComputeBackend _backend;
    private readonly LlamaModel _model;
    private readonly KvCacheDType _kvType;
    private KvCache? _single;

    public string Name => "sharpinfer";
    public int VocabSize => _model.VocabSize;
    public long WeightBytes { get; }
    public LlamaConfig Config => _model.Config;
    public int BosId => _checkpoint.Tokenizer.BosId;

    public SharpInferRunner(string path, int threads, KvCacheDType kvType, int maxBatch)
    {
        _checkpoint = ModelLoader.Load(path);
        try
        {
            _backend = ComputeBackend.Open(BackendKind.Cpu, threads);
            _model = new LlamaModel(_checkpoint, _backend, maxBatch);
        }
        catch
        {
            _backend?.Dispose();
            _checkpoint.Dispose();
            throw;
        }
        _kvType = kvType;
        WeightBytes = _checkpoint.TotalTensorBytes;
    }

    public SingleRun RunSingle(int[] prompt, int steps)
    {
        float[] logits = new float[VocabSize];
        int[] tokens = new int[steps], one = new int[1];
        // One cache reused across runs (as llama.cpp reuses its context), so no run pays first-touch page faults.
        if (_single is null || _single.Capacity < prompt.Length + steps)
        {
            _single?.Dispose();
            _single = _model.CreateCache(prompt.Length + steps, _kvType);
        }
        var cache = _single;
        cache.Clear();

        var clock = Stopwatch.StartNew();
        _model.Forward(prompt, cache, logits);
        int next = Sampler.Argmax(logits);
        double prefill = clock.Elapsed.TotalSeconds;

        clock.Restart();
        for (int i = 0; i < steps; i++)
        {
            tokens[i] = one[0] = next;
            _model.Forward(one, cache, logits);
            next = Sampler.Argmax(logits);
        }
        double decode = clock.Elapsed.TotalSeconds;
        return new SingleRun(prefill, decode, tokens);
    }

    public IConcurrentSession PrepareConcurrent(int[][] prompts, int maxSteps) => new Session(this, prompts, maxSteps);

    public void Dispose()
    {
        _single?.Dispose();
        _model.Dispose();
        _backend.Dispose();
        _checkpoint.Dispose();
    }

    /// <summary>N sequences in one paged pool; sequence s owns blocks [s * perSeq, (s + 1) * perSeq).</summary>
    private sealed class Session : IConcurrentSession
    {
        private readonly SharpInferRunner _owner;
        private readonly PagedKvCache _cache;
        private readonly int[][] _blockTables;
        private readonly int[] _promptLengths, _firstTokens;
        private readonly BatchPlan _plan;
        private readonly float[] _logits;
        private readonly int _maxSteps;

        public Session(SharpInferRunner owner, int[][] prompts, int maxSteps)
        {
            _owner = owner;
            _maxSteps = maxSteps;
            var model = owner._model;
            int n = prompts.Length, blockSize = LlamaModel.DefaultBlockSize;
            int perSeq = (prompts.Max(p => p.Length) + maxSteps + blockSize - 1) / blockSize;
            if (n > model.MaxBatch) throw new ArgumentException($"{n} sequences exceed MaxBatch {model.MaxBatch}");
            _cache = model.CreatePagedCache(n * perSeq, blockSize, owner._kvType);
            _blockTables = new int[n][];
            for (int s = 0; s < n; s++) _blockTables[s] = Enumerable.Range(s * perSeq, perSeq).ToArray();
            _promptLengths = prompts.Select(p => p.Length).ToArray();
            _firstTokens = new int[n];
            _plan = new BatchPlan(blockSize);
            _logits = new float[(long)n * model.VocabSize];

            // Prefill: as many whole prompts per step as MaxBatch allows.
            for (int first = 0; first < n;)
            {
                _plan.Clear();
                int last = first, tokens = 0;
                while (last < n && (last == first || tokens + prompts[last].Length <= model.MaxBatch))
                {
                    if (prompts[last].Length > model.MaxBatch) throw new ArgumentException($"a prompt of {prompts[last].Length} tokens exceeds MaxBatch {model.MaxBatch}");
                    _plan.AddSequence(prompts[last], 0, _blockTables[last]);
                    tokens += prompts[last].Length;
                    last++;
                }
                model.Forward(_plan, _cache, _logits);
                for (int s = first; s < last; s++)
                    _firstTokens[s] = Sampler.Argmax(_logits.AsSpan((s - first) * model.VocabSize, model.VocabSize));
                first = last;
            }
        }

        public ConcurrentRun Decode(int steps)
        {
            if (steps > _maxSteps) throw new ArgumentOutOfRangeException(nameof(steps));
            var model = _owner._model;
            int n = _blockTables.Length, vocab = model.VocabSize;
            int[] next = (int[])_firstTokens.Clone();
            int[][] tokens = new int[n][];
            for (int s = 0; s < n; s++) tokens[s] = new int[steps];
            Span<int> one = stackalloc int[1];

            var clock = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++)
            {
                _plan.Clear();
                for (int s = 0; s < n; s++)
                {
                    tokens[s][i] = next[s];
                    one[0] = next[s];
                    // Writing at position promptLength + i overwrites whatever an earlier run left there.
                    _plan.AddSequence(one, _promptLengths[s] + i, _blockTables[s]);
                }
                model.Forward(_plan, _cache, _logits);
                for (int s = 0; s < n; s++) next[s] = Sampler.Argmax(_logits.AsSpan(s * vocab, vocab));
            }
            return new ConcurrentRun(clock.Elapsed.TotalSeconds, tokens);
        }

        public void Dispose() => _cache.Dispose();
    }
}
