// LlamaWeights.cs: binds a checkpoint's tensors to the pointers and dtypes the kernels take,
// checking every shape against the config once. Matrices stay in the memory map (no copy);
// only small vectors (norms, biases) that are not f32 get an f32 copy. Quantized matrices bind
// their si_qmatmul arrays, so each linear layer carries the kernel its format needs; a quantized
// token embedding is dequantized to f32 once at load (the embedding op reads dense tables). Sparse
// (pruned) matrices bind their si_sparse_matmul arrays; where the load-time timing says dense is faster
// for some batch sizes (SparseKernelPlanner), they also get a dense copy and a row-count threshold.
using SharpInfer.Interop;
using SharpInfer.Models;
using SharpInfer.Quantization;
using SharpInfer.Sparsity;
using SharpInfer.Tensors;

namespace SharpInfer.Llama;

/// <summary>Which kernel family a linear layer's weight is stored for.</summary>
internal enum LinearKind { Dense, Quantized, Sparse }

/// <summary>
/// A linear layer's weight [Out, In] (one output channel per row) and optional bias: dense
/// (Data in DType, for si_matmul), quantized (Q/Scales/Offsets in Format, for si_qmatmul) or sparse
/// (values/index/row offsets in SparseFormat, for si_sparse_matmul, with an optional dense copy used
/// above SparseMaxRows rows).
/// </summary>
internal readonly unsafe struct LinearWeight
{
    public LinearWeight(string name, void* data, SiDType dtype, int outFeatures, int inFeatures, float* bias)
    {
        Name = name;
        Data = data;
        DType = dtype;
        Out = outFeatures;
        In = inFeatures;
        Bias = bias;
        Kind = LinearKind.Dense;
    }

    public LinearWeight(string name, QuantizedWeight q, float* bias)
    {
        Name = name;
        Out = q.Rows;
        In = q.Columns;
        Bias = bias;
        Kind = LinearKind.Quantized;
        Data = (void*)q.QData;
        Scales = (float*)q.ScalesData;
        Offsets = (float*)q.OffsetsData;
        GroupSize = q.GroupSize;
        Format = (SiWeightFormat)q.Format;
        Activations = (SiActivationMode)q.Activations;
    }

    /// <summary>A sparse weight; until a kernel choice is applied it always runs sparse.</summary>
    public LinearWeight(string name, SparseWeight w, float* bias)
    {
        Name = name;
        Out = w.Rows;
        In = w.Columns;
        Bias = bias;
        Kind = LinearKind.Sparse;
        Sparse = w;
        Data = (void*)w.Values;
        DType = (SiDType)w.ValuesDType;
        SparseIndex = (void*)w.Index;
        SparseRowOffsets = (long*)w.RowOffsets;
        SparseFormat = (SiSparseFormat)w.Format;
        SparseMaxRows = int.MaxValue;
    }

    private LinearWeight(in LinearWeight sparse, int sparseMaxRows, void* dense)
    {
        this = sparse;
        SparseMaxRows = sparseMaxRows;
        DenseData = dense;
    }

    /// <summary>This sparse weight, running sparse up to <paramref name="sparseMaxRows"/> rows and on <paramref name="dense"/> (same dtype) above.</summary>
    public LinearWeight WithKernelChoice(int sparseMaxRows, void* dense)
    {
        if (Kind != LinearKind.Sparse) throw new InvalidOperationException($"{Name} is not sparse");
        if (sparseMaxRows < int.MaxValue && dense == null) throw new ArgumentException("a dense copy is needed above the threshold", nameof(dense));
        return new LinearWeight(this, sparseMaxRows, dense);
    }

    /// <summary>Canonical tensor name (e.g. blk.0.attn_q.weight).</summary>
    public readonly string Name;
    public readonly LinearKind Kind;
    /// <summary>Dense values [Out, In] in DType; the quantized values when Quantized; the kept values (in DType) when Sparse.</summary>
    public readonly void* Data;
    public readonly SiDType DType;
    public readonly int Out;
    public readonly int In;
    public readonly float* Bias;

    public bool IsQuantized => Kind == LinearKind.Quantized;
    public readonly float* Scales;   // [Out, ceil(In / GroupSize)]
    public readonly float* Offsets;  // same, Int4 only
    public readonly int GroupSize;
    public readonly SiWeightFormat Format;
    public readonly SiActivationMode Activations;

    public readonly SparseWeight? Sparse;
    public readonly void* SparseIndex;        // 2:4: ushort [Out, kp/16]; bitmask: ulong [Out, ceil(In/64)]
    public readonly long* SparseRowOffsets;   // bitmask: [Out + 1]
    public readonly SiSparseFormat SparseFormat;
    /// <summary>Largest row count that runs on the sparse kernel; above it the dense copy runs.</summary>
    public readonly int SparseMaxRows;
    /// <summary>Dense [Out, In] in DType for batches above SparseMaxRows (null when sparse always runs).</summary>
    public readonly void* DenseData;
}

internal sealed unsafe class LayerWeights
{
    public float* AttnNorm;
    public LinearWeight Q, K, V, O;
    public float* FfnNorm;
    public LinearWeight Gate, Up, Down;
}

internal sealed unsafe class LlamaWeights : IDisposable
{
    private readonly List<HostBuffer<float>> _converted = [];
    private readonly ModelCheckpoint _checkpoint;

    public void* Embedding { get; }
    public SiDType EmbeddingDType { get; }
    public LayerWeights[] Layers { get; }
    public float* OutputNorm { get; }
    public LinearWeight Output { get; private set; }

    public LlamaWeights(ModelCheckpoint checkpoint)
    {
        _checkpoint = checkpoint;
        var c = checkpoint.Config;
        int qDim = c.NumHeads * c.HeadDim, kvDim = c.NumKvHeads * c.HeadDim;

        var embedding = Tensor("token_embd.weight", c.VocabSize, c.HiddenSize);
        if (embedding.Sparse is { } sparseEmbedding)
        {
            // The embedding op gathers dense rows: unpack the table once (exact values).
            var table = new HostBuffer<float>((long)c.VocabSize * c.HiddenSize);
            Parallel.For(0, c.VocabSize, r => sparseEmbedding.UnpackRow(r, table.AsSpan((long)r * c.HiddenSize, c.HiddenSize)));
            _converted.Add(table);
            Embedding = table.Pointer;
            EmbeddingDType = SiDType.F32;
        }
        else if (embedding.Quantized is { } quantizedEmbedding)
        {
            // The embedding op gathers dense rows: dequantize the table once (exact values).
            var table = new HostBuffer<float>((long)c.VocabSize * c.HiddenSize);
            Parallel.For(0, c.VocabSize, r => quantizedEmbedding.DequantizeRow(r, table.AsSpan((long)r * c.HiddenSize, c.HiddenSize)));
            _converted.Add(table);
            Embedding = table.Pointer;
            EmbeddingDType = SiDType.F32;
        }
        else
        {
            Embedding = (void*)embedding.Data;
            EmbeddingDType = (SiDType)embedding.DType;
        }

        Layers = new LayerWeights[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
        {
            string p = $"blk.{i}.";
            Layers[i] = new LayerWeights
            {
                AttnNorm = Vector(p + "attn_norm.weight", c.HiddenSize),
                Q = Linear(p + "attn_q", qDim, c.HiddenSize, c.AttentionBias),
                K = Linear(p + "attn_k", kvDim, c.HiddenSize, c.AttentionBias),
                V = Linear(p + "attn_v", kvDim, c.HiddenSize, c.AttentionBias),
                O = Linear(p + "attn_output", c.HiddenSize, qDim, false),
                FfnNorm = Vector(p + "ffn_norm.weight", c.HiddenSize),
                Gate = Linear(p + "ffn_gate", c.IntermediateSize, c.HiddenSize, false),
                Up = Linear(p + "ffn_up", c.IntermediateSize, c.HiddenSize, false),
                Down = Linear(p + "ffn_down", c.HiddenSize, c.IntermediateSize, false),
            };
        }
        OutputNorm = Vector("output_norm.weight", c.HiddenSize);
        // Tied classifier: the LM head reads the embedding table (its quantized form when it has one).
        Output = checkpoint.TryGetTensor("output.weight", out _) ? Linear("output", c.VocabSize, c.HiddenSize, false)
            : embedding.Quantized is { } q ? new LinearWeight("token_embd.weight", q, null)
            : embedding.Sparse is { } sp ? new LinearWeight("token_embd.weight", sp, null)
            : new LinearWeight("token_embd.weight", Embedding, EmbeddingDType, c.VocabSize, c.HiddenSize, null);
    }

    private WeightTensor Tensor(string name, params long[] shape)
    {
        var tensor = _checkpoint.GetTensor(name);
        if (!tensor.Shape.AsSpan().SequenceEqual(shape))
            throw new ModelFormatException(
                $"{_checkpoint.SourcePath}: tensor '{name}' has shape [{string.Join(", ", tensor.Shape)}], " +
                $"but the config implies [{string.Join(", ", shape)}]");
        return tensor;
    }

    private LinearWeight Linear(string name, int outFeatures, int inFeatures, bool hasBias)
    {
        var weight = Tensor(name + ".weight", outFeatures, inFeatures);
        float* bias = hasBias ? Vector(name + ".bias", outFeatures) : null;
        return weight.Quantized is { } q ? new LinearWeight(weight.Name, q, bias)
            : weight.Sparse is { } sparse ? new LinearWeight(weight.Name, sparse, bias)
            : new LinearWeight(weight.Name, (void*)weight.Data, (SiDType)weight.DType, outFeatures, inFeatures, bias);
    }

    private float* Vector(string name, int length)
    {
        var tensor = Tensor(name, length);
        if (tensor.IsQuantized || tensor.IsSparse)
            throw new ModelFormatException($"{_checkpoint.SourcePath}: vector '{name}' is {(tensor.IsSparse ? "sparse" : "quantized")}; only matrices may be");
        if (tensor.DType == TensorDType.F32) return (float*)tensor.Data;
        var copy = new HostBuffer<float>(length);
        tensor.ToFloat32().CopyTo(copy.AsSpan());
        _converted.Add(copy);
        return copy.Pointer;
    }

    /// <summary>
    /// Decides, per sparse linear layer, where the sparse kernel runs (SparseKernelPlanner) and binds a
    /// dense copy for the batch sizes where it does not. Returns the decisions, one per weight group.
    /// </summary>
    public IReadOnlyList<SparseKernelChoice> ChooseSparseKernels(NativeContext context, SparseKernelPolicy policy)
    {
        var sparse = new List<LinearWeight>();
        foreach (var layer in Layers)
            foreach (var w in (LinearWeight[])[layer.Q, layer.K, layer.V, layer.O, layer.Gate, layer.Up, layer.Down])
                if (w.Kind == LinearKind.Sparse) sparse.Add(w);
        if (Output.Kind == LinearKind.Sparse) sparse.Add(Output);
        if (sparse.Count == 0) return [];

        var choices = SparseKernelPlanner.Choose(context, sparse.Select(w => (w.Name, w.Sparse!)).ToList(), policy);
        var byName = choices.SelectMany(c => c.Weights.Select(n => (n, c))).ToDictionary(x => x.n, x => x.c, StringComparer.Ordinal);
        LinearWeight Apply(LinearWeight w)
        {
            if (w.Kind != LinearKind.Sparse) return w;
            var choice = byName[w.Name];
            if (choice.SparseMaxRows == int.MaxValue) return w;
            void* dense = (void*)w.Sparse!.DenseSource;
            if (dense == null)
            {
                var copy = w.Sparse.ToDenseNative();
                _ownedBytes.Add(copy);
                dense = copy.Pointer;
            }
            return w.WithKernelChoice(choice.SparseMaxRows, dense);
        }
        foreach (var layer in Layers)
        {
            layer.Q = Apply(layer.Q); layer.K = Apply(layer.K); layer.V = Apply(layer.V); layer.O = Apply(layer.O);
            layer.Gate = Apply(layer.Gate); layer.Up = Apply(layer.Up); layer.Down = Apply(layer.Down);
        }
        Output = Apply(Output);
        return choices;
    }

    private readonly List<HostBuffer<byte>> _ownedBytes = [];

    public void Dispose()
    {
        foreach (var buffer in _converted) buffer.Dispose();
        foreach (var buffer in _ownedBytes) buffer.Dispose();
    }
}
