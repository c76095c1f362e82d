// ModelFormatException.cs: the one error every bad model file or folder turns into,
// carrying the path and a message that says what is wrong and where.
namespace SharpInfer.Models;

/// <summary>
/// A checkpoint (GGUF file, Hugging Face folder, config, tokenizer) is malformed, truncated,
/// inconsistent or uses a feature this build does not support.
/// </summary>
public sealed class ModelFormatException : Exception
{
    /// <summary>The file or folder the problem was found in, when known.</summary>
    public string? FilePath { get; }

    /// <summary>What is wrong, without the path prefix.</summary>
    public string Detail { get; }

    /// <summary>A message that already names the file.</summary>
    public ModelFormatException(string message) : base(message)
    {
        Detail = message;
    }

    public ModelFormatException(string? filePath, string detail, Exception? inner = null)
        : base(filePath is null ? detail : $"{filePath}: {detail}", inner)
    {
        FilePath = filePath;
        Detail = detail;
    }
}
