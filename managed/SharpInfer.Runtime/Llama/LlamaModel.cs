// LlamaModel.cs: the Llama-family forward pass (Llama 2/3, TinyLlama, Mistral, Qwen2) for one
// sequence over its KV cache, as a sequence of native ops. Prompts run in chunks of up to
// MaxBatch tokens; each chunk writes its K/V straight into the cache rows of its positions.
using SharpInfer.Backends;
using SharpInfer.Interop;
using SharpInfer.Models;
using SharpInfer.Sparsity;
using SharpInfer.Tensors;

namespace SharpInfer.Llama;

/// <summary>Receives a linear layer's input rows: <paramref name="rows"/> rows of <paramref name="width"/> values, <paramref name="stride"/> apart.</summary>
internal delegate void LinearInputObserver(string weightName, ReadOnlySpan<float> input, int rows, int stride, int width);

public sealed unsafe class LlamaModel : IDisposable
{
    private readonly ComputeBackend _backend;
    private readonly LlamaWeights _weights;
    private readonly Scratch _scratch;

    public LlamaConfig Config { get; }
    /// <summary>Most tokens one forward call processes at once (longer inputs are chunked).</summary>
    public int MaxBatch { get; }
    public int VocabSize => Config.VocabSize;

    /// <param name="sparseKernels">For pruned weights: time sparse against dense at load and keep the
    /// faster per shape and batch size (Auto), or force one kernel.</param>
    public LlamaModel(ModelCheckpoint checkpoint, ComputeBackend backend, int maxBatch = 256,
                      SparseKernelPolicy sparseKernels = SparseKernelPolicy.Auto)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        Config = checkpoint.Config;
        _backend = backend;
        _weights = new LlamaWeights(checkpoint);
        try
        {
            SparseKernelChoices = _weights.ChooseSparseKernels(backend.Context, sparseKernels);
        }
        catch
        {
            _weights.Dispose();
            throw;
        }
        MaxBatch = maxBatch;
        _scratch = new Scratch(Config, maxBatch);
    }

    /// <summary>Where each group of sparse weights runs sparse or dense (empty for a model without sparse weights).</summary>
    public IReadOnlyList<SparseKernelChoice> SparseKernelChoices { get; }

    /// <summary>Tokens per KV block of caches this model creates.</summary>
    public const int DefaultBlockSize = 16;

    /// <summary>A KV cache for one sequence of up to <paramref name="capacity"/> tokens
    /// (default: the model's context length).</summary>
    public KvCache CreateCache(int capacity = 0, KvCacheDType dtype = KvCacheDType.F32)
    {
        if (capacity <= 0) capacity = Config.MaxContext;
        return new KvCache(Config, capacity, DefaultBlockSize, dtype);
    }

    /// <summary>A KV block pool shared by many sequences (the batching engine's).</summary>
    public PagedKvCache CreatePagedCache(int numBlocks, int blockSize = DefaultBlockSize, KvCacheDType dtype = KvCacheDType.F32) =>
        new(Config.NumLayers, numBlocks, blockSize, Config.NumKvHeads, Config.HeadDim, dtype);

    /// <summary>
    /// Runs <paramref name="tokens"/> at the next positions of <paramref name="cache"/> and
    /// writes next-token logits: for every token ([tokens.Length, vocab]) when
    /// <paramref name="allPositions"/>, else for the last token only ([vocab]).
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, KvCache cache, Span<float> logits, bool allPositions = false)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to evaluate", nameof(tokens));
        if (cache.Length + tokens.Length > cache.Capacity)
            throw new ContextOverflowException(
                $"{cache.Length + tokens.Length} tokens exceed the context of {cache.Capacity} tokens");
        long needed = (long)(allPositions ? tokens.Length : 1) * VocabSize;
        if (logits.Length < needed) throw new ArgumentException($"logits needs {needed} floats", nameof(logits));

        var plan = new BatchPlan(cache.Pages.BlockSize);
        for (int start = 0; start < tokens.Length; start += MaxBatch)
        {
            int count = Math.Min(MaxBatch, tokens.Length - start);
            bool last = start + count == tokens.Length;
            plan.Clear();
            plan.AddSequence(tokens.Slice(start, count), cache.Length, cache.BlockTable, lastLogits: last, allLogits: allPositions);
            Span<float> chunkLogits = allPositions ? logits.Slice(start * VocabSize, count * VocabSize)
                : last ? logits[..VocabSize] : default;
            Forward(plan, cache.Pages, chunkLogits);
            cache.Length += count;
        }
    }

    /// <summary>
    /// One batched step: every sequence's new tokens, their K/V written into
    /// <paramref name="cache"/> at the plan's slots, and logits for the plan's logit rows
    /// ([plan.LogitRowCount, vocab], in row order).
    /// </summary>
    public void Forward(BatchPlan plan, PagedKvCache cache, Span<float> logits)
    {
        int n = plan.TokenCount;
        if (n == 0) return;
        if (n > MaxBatch) throw new ArgumentException($"a step of {n} tokens exceeds MaxBatch {MaxBatch}; split it into chunks");
        if (plan.BlockSize != cache.BlockSize) throw new ArgumentException("the plan's block size differs from the cache's");
        if (logits.Length < (long)plan.LogitRowCount * VocabSize) throw new ArgumentException($"logits needs {(long)plan.LogitRowCount * VocabSize} floats", nameof(logits));
        foreach (int id in plan.Tokens)
            if ((uint)id >= (uint)VocabSize)
                throw new ArgumentOutOfRangeException(nameof(plan), $"token id {id} is outside the vocabulary [0, {VocabSize})");

        var c = Config;
        var ctx = _backend.Context;
        var s = _scratch;
        int dim = c.HiddenSize, hd = c.HeadDim;
        int qDim = c.NumHeads * hd, kvDim = c.NumKvHeads * hd, ffn = c.IntermediateSize;
        s.Load(plan);

        float* x = s.X.Pointer, xb = s.Xb.Pointer, q = s.Q.Pointer, k = s.K.Pointer, v = s.V.Pointer, att = s.Att.Pointer;
        float* gate = s.Gate.Pointer, up = s.Up.Pointer;

        ctx.Embedding(new SiEmbeddingParams
        {
            Table = _weights.Embedding, TableDType = _weights.EmbeddingDType, Ids = s.Ids.Pointer,
            Out = x, Vocab = c.VocabSize, Dim = dim, NumTokens = n,
        });

        var attention = new SiPagedAttentionParams
        {
            Q = q, Out = att, CuSeqlensQ = s.CuSeqlens.Pointer, ContextLens = s.ContextLens.Pointer,
            BlockTables = s.BlockTables.Pointer, Cache = cache.Layer(0), QStride = qDim, OutStride = qDim,
            NumSeqs = plan.SequenceCount, MaxBlocksPerSeq = plan.MaxBlocksPerSequence, NumHeads = c.NumHeads,
            MaxQLen = plan.MaxQueryLength, MaxContextLen = plan.MaxContextLength, Scale = 1.0f / MathF.Sqrt(hd),
        };
        attention.WorkspaceBytes = ctx.PagedAttentionWorkspaceSize(attention);
        attention.Workspace = s.Workspace(attention.WorkspaceBytes);

        for (int l = 0; l < c.NumLayers; l++)
        {
            var w = _weights.Layers[l];
            var layerCache = cache.Layer(l);

            RmsNorm(x, w.AttnNorm, xb, n);
            Matmul(xb, dim, w.Q, q, qDim, n);
            Matmul(xb, dim, w.K, k, kvDim, n);
            Matmul(xb, dim, w.V, v, kvDim, n);
            Rope(q, c.NumHeads, qDim, n);
            Rope(k, c.NumKvHeads, kvDim, n);
            ctx.KvWrite(new SiKvWriteParams
            {
                K = k, V = v, SlotMapping = s.Slots.Pointer, Cache = layerCache, KStride = kvDim, VStride = kvDim, NumTokens = n,
            });
            attention.Cache = layerCache;
            ctx.PagedAttention(attention);
            Matmul(att, qDim, w.O, xb, dim, n);
            ctx.Add(new SiAddParams { A = x, B = xb, Out = x, N = (long)n * dim });

            RmsNorm(x, w.FfnNorm, xb, n);
            Matmul(xb, dim, w.Gate, gate, ffn, n);
            Matmul(xb, dim, w.Up, up, ffn, n);
            ctx.Swiglu(new SiSwigluParams
            {
                Gate = gate, Up = up, Out = gate, GateStride = ffn, UpStride = ffn, OutStride = ffn, Rows = n, N = ffn,
            });
            Matmul(gate, ffn, w.Down, xb, dim, n);
            ctx.Add(new SiAddParams { A = x, B = xb, Out = x, N = (long)n * dim });
        }

        int rows = plan.LogitRowCount;
        if (rows == 0) return;
        // Only the rows that need logits go through the final norm and the LM head.
        for (int r = 0; r < rows; r++)
            new ReadOnlySpan<float>(x + (long)plan.LogitRows[r] * dim, dim).CopyTo(new Span<float>(xb + (long)r * dim, dim));
        RmsNorm(xb, _weights.OutputNorm, xb, rows);
        fixed (float* outLogits = logits)
            Matmul(xb, dim, _weights.Output, outLogits, c.VocabSize, rows);
    }

    private void RmsNorm(float* input, float* weight, float* output, int rows) =>
        _backend.Context.RmsNorm(new SiRmsNormParams
        {
            X = input, Weight = weight, Out = output, XStride = Config.HiddenSize, OutStride = Config.HiddenSize,
            Rows = rows, Dim = Config.HiddenSize, Eps = Config.RmsNormEps,
        });

    /// <summary>Sees every linear layer's input before its matmul (calibration for activation-aware quantization).</summary>
    internal LinearInputObserver? LinearInputObserver { get; set; }

    // The weight's format picks the kernel: dense -> si_matmul, int8/int4 -> si_qmatmul, sparse ->
    // si_sparse_matmul up to the row count where it measured faster, si_matmul on its dense copy above.
    private void Matmul(float* input, int inputStride, in LinearWeight w, float* output, int outputStride, int rows)
    {
        if (LinearInputObserver is { } observe && rows > 0)
            observe(w.Name, new ReadOnlySpan<float>(input, (rows - 1) * inputStride + w.In), rows, inputStride, w.In);
        if (w.Kind == LinearKind.Sparse && rows <= w.SparseMaxRows)
            _backend.Context.SparseMatmul(new SiSparseMatmulParams
            {
                X = input, Values = w.Data, Index = w.SparseIndex, RowOffsets = w.SparseRowOffsets, Bias = w.Bias, Y = output,
                XStride = inputStride, YStride = outputStride, M = rows, N = w.Out, K = w.In,
                ValuesDType = w.DType, Format = w.SparseFormat,
            });
        else if (w.Kind == LinearKind.Sparse)
            _backend.Context.Matmul(new SiMatmulParams
            {
                X = input, W = w.DenseData, Bias = w.Bias, Y = output, XStride = inputStride, YStride = outputStride,
                M = rows, N = w.Out, K = w.In, WDType = w.DType,
            });
        else if (w.IsQuantized)
            _backend.Context.QMatmul(new SiQmatmulParams
            {
                X = input, Q = w.Data, Scales = w.Scales, Offsets = w.Offsets, Bias = w.Bias, Y = output,
                XStride = inputStride, YStride = outputStride, M = rows, N = w.Out, K = w.In,
                GroupSize = w.GroupSize, Format = w.Format, Activations = w.Activations,
            });
        else
            _backend.Context.Matmul(new SiMatmulParams
            {
                X = input, W = w.Data, Bias = w.Bias, Y = output, XStride = inputStride, YStride = outputStride,
                M = rows, N = w.Out, K = w.In, WDType = w.DType,
            });
    }

    private void Rope(float* data, int heads, int tokenStride, int tokens) =>
        _backend.Context.Rope(new SiRopeParams
        {
            X = data, Positions = _scratch.Positions.Pointer, TokenStride = tokenStride, NumTokens = tokens,
            NumHeads = heads, HeadDim = Config.HeadDim, RotaryDim = Config.HeadDim,
            FreqBase = Config.RopeTheta, FreqScale = Config.RopeScale, Layout = (SiRopeLayout)Config.RopeLayout,
        });

    public void Dispose()
    {
        _scratch.Dispose();
        _weights.Dispose();
    }

    /// <summary>Activation and plan buffers for one step of up to MaxBatch tokens, reused every call.</summary>
    private sealed class Scratch : IDisposable
    {
        public readonly HostBuffer<int> Ids, Positions, Slots, CuSeqlens, ContextLens;
        public HostBuffer<int> BlockTables = new(0);
        public readonly HostBuffer<float> X, Xb, Q, K, V, Att, Gate, Up;
        private HostBuffer<byte> _workspace = new(0);

        public Scratch(LlamaConfig c, int maxBatch)
        {
            long qDim = (long)c.NumHeads * c.HeadDim, kvDim = (long)c.NumKvHeads * c.HeadDim;
            Ids = new HostBuffer<int>(maxBatch);
            Positions = new HostBuffer<int>(maxBatch);
            Slots = new HostBuffer<int>(maxBatch);
            CuSeqlens = new HostBuffer<int>(maxBatch + 1);
            ContextLens = new HostBuffer<int>(maxBatch);
            X = new HostBuffer<float>(maxBatch * (long)c.HiddenSize);
            Xb = new HostBuffer<float>(maxBatch * Math.Max(c.HiddenSize, qDim));
            Q = new HostBuffer<float>(maxBatch * qDim);
            K = new HostBuffer<float>(maxBatch * kvDim);
            V = new HostBuffer<float>(maxBatch * kvDim);
            Att = new HostBuffer<float>(maxBatch * qDim);
            Gate = new HostBuffer<float>(maxBatch * (long)c.IntermediateSize);
            Up = new HostBuffer<float>(maxBatch * (long)c.IntermediateSize);
        }

        /// <summary>Copies the plan's arrays into native memory (a sequence has at least
        /// one token, so MaxBatch bounds the sequence count too).</summary>
        public void Load(BatchPlan plan)
        {
            Copy(plan.Tokens, Ids);
            Copy(plan.Positions, Positions);
            Copy(plan.Slots, Slots);
            Copy(plan.CuSeqlens, CuSeqlens);
            Copy(plan.ContextLengths, ContextLens);
            long tableLength = (long)plan.SequenceCount * plan.MaxBlocksPerSequence;
            if (BlockTables.Length < tableLength)
            {
                BlockTables.Dispose();
                BlockTables = new HostBuffer<int>(tableLength * 2);
            }
            plan.FillBlockTables(BlockTables.AsSpan(0, (int)tableLength));
        }

        /// <summary>At least <paramref name="bytes"/> of attention scratch (null for 0).</summary>
        public void* Workspace(long bytes)
        {
            if (bytes == 0) return null;
            if (_workspace.Length < bytes)
            {
                _workspace.Dispose();
                _workspace = new HostBuffer<byte>(bytes);
            }
            return _workspace.Pointer;
        }

        private static void Copy(IReadOnlyList<int> source, HostBuffer<int> destination)
        {
            var span = destination.AsSpan(0, source.Count);
            for (int i = 0; i < span.Length; i++) span[i] = source[i];
        }

        public void Dispose()
        {
            foreach (var b in new[] { Ids, Positions, Slots, CuSeqlens, ContextLens, BlockTables }) b.Dispose();
            foreach (var b in new[] { X, Xb, Q, K, V, Att, Gate, Up }) b.Dispose();
            _workspace.Dispose();
        }
    }
}
