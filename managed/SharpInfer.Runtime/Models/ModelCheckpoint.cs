// ModelCheckpoint.cs: a loaded model: config, tokenizer, chat template and weight tensors that
// point into memory-mapped files. Disposing it unmaps the files (and invalidates tensor pointers).
using System.Diagnostics.CodeAnalysis;
using SharpInfer.Tokenization;

namespace SharpInfer.Models;

/// <summary>The result of <see cref="ModelLoader.Load"/>. Dispose it to release the file mappings.</summary>
public sealed class ModelCheckpoint : IDisposable
{
    private readonly Dictionary<string, WeightTensor> _tensors;
    private readonly IReadOnlyList<IDisposable> _owned;

    internal ModelCheckpoint(string sourcePath, string format, LlamaConfig config, TextTokenizer tokenizer, string? chatTemplate,
                             Dictionary<string, WeightTensor> tensors, IReadOnlyList<string> tensorOrder, IReadOnlyList<IDisposable> owned)
    {
        SourcePath = sourcePath;
        Format = format;
        Config = config;
        Tokenizer = tokenizer;
        ChatTemplate = chatTemplate;
        _tensors = tensors;
        TensorNames = tensorOrder;
        _owned = owned;
    }

    /// <summary>The .gguf file or Hugging Face folder it was loaded from.</summary>
    public string SourcePath { get; }

    /// <summary>"gguf" or "hf".</summary>
    public string Format { get; }

    public LlamaConfig Config { get; }
    public TextTokenizer Tokenizer { get; }

    /// <summary>The Jinja chat template the checkpoint ships, if any.</summary>
    public string? ChatTemplate { get; }

    /// <summary>Canonical names of every tensor, in file order.</summary>
    public IReadOnlyCollection<string> TensorNames { get; }

    /// <summary>Total bytes of all tensors.</summary>
    public long TotalTensorBytes => _tensors.Values.Sum(t => t.ByteLength);

    /// <summary>The tensor with canonical name <paramref name="canonicalName"/> (e.g. <c>blk.0.attn_q.weight</c>).</summary>
    public WeightTensor GetTensor(string canonicalName)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        return _tensors.TryGetValue(canonicalName, out var t)
            ? t
            : throw new ModelFormatException(SourcePath, $"no tensor named '{canonicalName}'");
    }

    public bool TryGetTensor(string canonicalName, [MaybeNullWhen(false)] out WeightTensor tensor)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        return _tensors.TryGetValue(canonicalName, out tensor);
    }

    public bool IsDisposed { get; private set; }

    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        foreach (var d in _owned) d.Dispose();
    }
}
