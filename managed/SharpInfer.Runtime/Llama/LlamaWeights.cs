// LlamaWeights.cs: binds a checkpoint's tensors to the pointers and dtypes the kernels take,
// checking every shape against the config once. Matrices stay in the memory map (no copy);
// only small vectors (norms, biases) that are not f32 get an f32 copy. Quantized matrices bind
// their si_qmatmul arrays, so each linear layer carries the kernel its format needs; a quantized
// token embedding is dequantized to f32 once at load (the embedding op reads dense tables).
using SharpInfer.Interop;
using SharpInfer.Models;
using SharpInfer.Quantization;
using SharpInfer.Tensors;

namespace SharpInfer.Llama;

/// <summary>
/// A linear layer's weight [Out, In] (one output channel per row) and optional bias: dense
/// (Data in DType, for si_matmul) or quantized (Q/Scales/Offsets in Format, for si_qmatmul).
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
    }

    public LinearWeight(string name, QuantizedWeight q, float* bias)
    {
        Name = name;
        Out = q.Rows;
        In = q.Columns;
        Bias = bias;
        IsQuantized = true;
        Data = (void*)q.QData;
        Scales = (float*)q.ScalesData;
        Offsets = (float*)q.OffsetsData;
        GroupSize = q.GroupSize;
        Format = (SiWeightFormat)q.Format;
        Activations = (SiActivationMode)q.Activations;
    }

    /// <summary>Canonical tensor name (e.g. blk.0.attn_q.weight).</summary>
    public readonly string Name;
    /// <summary>Dense values [Out, In] in DType, or the quantized values when IsQuantized.</summary>
    public readonly void* Data;
    public readonly SiDType DType;
    public readonly int Out;
    public readonly int In;
    public readonly float* Bias;

    public readonly bool IsQuantized;
    public readonly float* Scales;   // [Out, ceil(In / GroupSize)]
    public readonly float* Offsets;  // same, Int4 only
    public readonly int GroupSize;
    public readonly SiWeightFormat Format;
    public readonly SiActivationMode Activations;
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
    public LinearWeight Output { get; }

    public LlamaWeights(ModelCheckpoint checkpoint)
    {
        _checkpoint = checkpoint;
        var c = checkpoint.Config;
        int qDim = c.NumHeads * c.HeadDim, kvDim = c.NumKvHeads * c.HeadDim;

        var embedding = Tensor("token_embd.weight", c.VocabSize, c.HiddenSize);
        if (embedding.Quantized is { } quantizedEmbedding)
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
            : new LinearWeight(weight.Name, (void*)weight.Data, (SiDType)weight.DType, outFeatures, inFeatures, bias);
    }

    private float* Vector(string name, int length)
    {
        var tensor = Tensor(name, length);
        if (tensor.IsQuantized) throw new ModelFormatException($"{_checkpoint.SourcePath}: vector '{name}' is quantized; only matrices may be");
        if (tensor.DType == TensorDType.F32) return (float*)tensor.Data;
        var copy = new HostBuffer<float>(length);
        tensor.ToFloat32().CopyTo(copy.AsSpan());
        _converted.Add(copy);
        return copy.Pointer;
    }

    public void Dispose()
    {
        foreach (var buffer in _converted) buffer.Dispose();
    }
}
