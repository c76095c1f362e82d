// LlamaModel.cs: the Llama-family forward pass (Llama 2/3, TinyLlama, Mistral, Qwen2) for one
// sequence over its KV cache, as a sequence of native ops. Prompts run in chunks of up to
// MaxBatch tokens; each chunk writes its K/V straight into the cache rows of its positions.
using SharpInfer.Backends;
using SharpInfer.Interop;
using SharpInfer.Models;
using SharpInfer.Tensors;

namespace SharpInfer.Llama;

public sealed unsafe class LlamaModel : IDisposable
{
    private readonly ComputeBackend _backend;
    private readonly LlamaWeights _weights;
    private readonly Scratch _scratch;

    public LlamaConfig Config { get; }
    /// <summary>Most tokens one forward call processes at once (longer inputs are chunked).</summary>
    public int MaxBatch { get; }
    public int VocabSize => Config.VocabSize;

    public LlamaModel(ModelCheckpoint checkpoint, ComputeBackend backend, int maxBatch = 256)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        Config = checkpoint.Config;
        _backend = backend;
        _weights = new LlamaWeights(checkpoint);
        MaxBatch = maxBatch;
        _scratch = new Scratch(Config, maxBatch);
    }

    /// <summary>A KV cache for one sequence of up to <paramref name="capacity"/> tokens
    /// (default: the model's context length).</summary>
    public KvCache CreateCache(int capacity = 0)
    {
        if (capacity <= 0) capacity = Config.MaxContext;
        return new KvCache(Config.NumLayers, capacity, Config.NumKvHeads * Config.HeadDim);
    }

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
        foreach (int id in tokens)
            if ((uint)id >= (uint)VocabSize)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {id} is outside the vocabulary [0, {VocabSize})");

        for (int start = 0; start < tokens.Length; start += MaxBatch)
        {
            int count = Math.Min(MaxBatch, tokens.Length - start);
            bool last = start + count == tokens.Length;
            if (allPositions)
                ForwardChunk(tokens.Slice(start, count), cache, logits.Slice(start * VocabSize, count * VocabSize), count);
            else
                ForwardChunk(tokens.Slice(start, count), cache, last ? logits[..VocabSize] : default, last ? 1 : 0);
        }
    }

    private void ForwardChunk(ReadOnlySpan<int> tokens, KvCache cache, Span<float> logits, int logitRows)
    {
        var c = Config;
        var ctx = _backend.Context;
        var s = _scratch;
        int n = tokens.Length, dim = c.HiddenSize, hd = c.HeadDim;
        int qDim = c.NumHeads * hd, kvDim = c.NumKvHeads * hd, ffn = c.IntermediateSize;
        int pos0 = cache.Length;

        tokens.CopyTo(s.Ids.AsSpan(0, n));
        for (int i = 0; i < n; i++) s.Positions.Pointer[i] = pos0 + i;

        float* x = s.X.Pointer, xb = s.Xb.Pointer, q = s.Q.Pointer, att = s.Att.Pointer;
        float* gate = s.Gate.Pointer, up = s.Up.Pointer;

        ctx.Embedding(new SiEmbeddingParams
        {
            Table = _weights.Embedding, TableDType = _weights.EmbeddingDType, Ids = s.Ids.Pointer,
            Out = x, Vocab = c.VocabSize, Dim = dim, NumTokens = n,
        });

        for (int l = 0; l < c.NumLayers; l++)
        {
            var w = _weights.Layers[l];
            float* kRows = cache.Keys(l).Pointer + (long)pos0 * kvDim;
            float* vRows = cache.Values(l).Pointer + (long)pos0 * kvDim;

            RmsNorm(x, w.AttnNorm, xb, n);
            Matmul(xb, dim, w.Q, q, qDim, n);
            Matmul(xb, dim, w.K, kRows, kvDim, n);  // K/V land in their cache rows directly
            Matmul(xb, dim, w.V, vRows, kvDim, n);
            Rope(q, c.NumHeads, qDim, n);
            Rope(kRows, c.NumKvHeads, kvDim, n);
            ctx.Attention(new SiAttentionParams
            {
                Q = q, KCache = cache.Keys(l).Pointer, VCache = cache.Values(l).Pointer, Out = att,
                QStride = qDim, KvStride = kvDim, OutStride = qDim,
                NumQ = n, NumCtx = pos0 + n, NumHeads = c.NumHeads, NumKvHeads = c.NumKvHeads,
                HeadDim = hd, Scale = 1.0f / MathF.Sqrt(hd),
            });
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
        cache.Length = pos0 + n;

        if (logitRows == 0) return;
        // Only the rows that need logits go through the final norm and the LM head.
        float* rows = x + (long)(n - logitRows) * dim;
        RmsNorm(rows, _weights.OutputNorm, xb, logitRows);
        fixed (float* outLogits = logits)
            Matmul(xb, dim, _weights.Output, outLogits, c.VocabSize, logitRows);
    }

    private void RmsNorm(float* input, float* weight, float* output, int rows) =>
        _backend.Context.RmsNorm(new SiRmsNormParams
        {
            X = input, Weight = weight, Out = output, XStride = Config.HiddenSize, OutStride = Config.HiddenSize,
            Rows = rows, Dim = Config.HiddenSize, Eps = Config.RmsNormEps,
        });

    private void Matmul(float* input, int inputStride, in LinearWeight w, float* output, int outputStride, int rows) =>
        _backend.Context.Matmul(new SiMatmulParams
        {
            X = input, W = w.Data, Bias = w.Bias, Y = output, XStride = inputStride, YStride = outputStride,
            M = rows, N = w.Out, K = w.In, WDType = w.DType,
        });

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

    /// <summary>Activation buffers for one chunk of up to MaxBatch tokens, reused every call.</summary>
    private sealed class Scratch : IDisposable
    {
        public readonly HostBuffer<int> Ids, Positions;
        public readonly HostBuffer<float> X, Xb, Q, Att, Gate, Up;

        public Scratch(LlamaConfig c, int maxBatch)
        {
            long qDim = (long)c.NumHeads * c.HeadDim;
            Ids = new HostBuffer<int>(maxBatch);
            Positions = new HostBuffer<int>(maxBatch);
            X = new HostBuffer<float>(maxBatch * (long)c.HiddenSize);
            Xb = new HostBuffer<float>(maxBatch * Math.Max(c.HiddenSize, qDim));
            Q = new HostBuffer<float>(maxBatch * qDim);
            Att = new HostBuffer<float>(maxBatch * qDim);
            Gate = new HostBuffer<float>(maxBatch * (long)c.IntermediateSize);
            Up = new HostBuffer<float>(maxBatch * (long)c.IntermediateSize);
        }

        public void Dispose()
        {
            Ids.Dispose(); Positions.Dispose();
            X.Dispose(); Xb.Dispose(); Q.Dispose(); Att.Dispose(); Gate.Dispose(); Up.Dispose();
        }
    }
}
