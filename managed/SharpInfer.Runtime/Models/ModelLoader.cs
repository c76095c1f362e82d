// ModelLoader.cs: the entry point that picks the loader by path: a .gguf file, or a Hugging Face
// folder with config.json (model.safetensors or a sharded index, tokenizer.model).
using SharpInfer.Models.Gguf;
using SharpInfer.Models.HuggingFace;

namespace SharpInfer.Models;

public static class ModelLoader
{
    /// <summary>
    /// Loads a checkpoint: a <c>.gguf</c> file, or a folder (or its config.json) in Hugging Face layout.
    /// Any problem is a <see cref="ModelFormatException"/> naming the file and what is wrong.
    /// </summary>
    public static ModelCheckpoint Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            if (File.Exists(Path.Combine(full, "config.json"))) return HfCheckpointLoader.Load(full);
            var ggufs = Directory.GetFiles(full, "*.gguf");
            throw new ModelFormatException(full, ggufs.Length > 0
                ? $"folder has no config.json; to load a GGUF file pass its path (found {string.Join(", ", ggufs.Select(Path.GetFileName))})"
                : "folder has no config.json, so it is not a Hugging Face model folder");
        }
        if (!File.Exists(full)) throw new ModelFormatException(full, "no such file or folder");
        if (Path.GetFileName(full) == "config.json") return HfCheckpointLoader.Load(Path.GetDirectoryName(full)!);
        if (full.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) || HasGgufMagic(full))
            return GgufCheckpointLoader.Load(full);
        throw new ModelFormatException(full, "not a .gguf file or a Hugging Face folder with config.json");
    }

    private static bool HasGgufMagic(string path)
    {
        try
        {
            using var f = File.OpenRead(path);
            Span<byte> magic = stackalloc byte[4];
            return f.Read(magic) == 4 && magic.SequenceEqual("GGUF"u8);
        }
        catch (IOException)
        {
            return false;
        }
    }
}
