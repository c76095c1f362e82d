// TestFiles.cs: helpers that craft model files for the loader tests: a temp folder, a small
// Llama GGUF whose metadata and tensors a test can edit, a safetensors writer, and byte patching.
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using SharpInfer.Models;
using SharpInfer.Models.Gguf;
using SharpInfer.Tokenization;

namespace SharpInfer.Tests.Models;

/// <summary>A fresh folder under the temp dir, deleted on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sharpinfer-tests-" + Guid.NewGuid().ToString("N"));

    public TempDirectory() => Directory.CreateDirectory(Path);

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class TestFiles
{
    /// <summary>2 layers, hidden 32, 4 heads / 2 KV heads (head dim 8), vocab 300 (built-in vocabulary).</summary>
    public static LlamaConfig SmallConfig { get; } = new()
    {
        VocabSize = 300, HiddenSize = 32, IntermediateSize = 48, NumLayers = 2,
        NumHeads = 4, NumKvHeads = 2, HeadDim = 8, MaxContext = 128, RmsNormEps = 1e-5f,
    };

    /// <summary>The metadata SyntheticModel would write for <paramref name="config"/>.</summary>
    public static List<KeyValuePair<string, GgufValue>> LlamaMetadata(LlamaConfig config, string? architecture = null)
    {
        string a = architecture ?? config.Architecture;
        var list = new List<KeyValuePair<string, GgufValue>>
        {
            new("general.architecture", GgufValue.String(a)),
            new($"{a}.context_length", GgufValue.UInt32((uint)config.MaxContext)),
            new($"{a}.embedding_length", GgufValue.UInt32((uint)config.HiddenSize)),
            new($"{a}.block_count", GgufValue.UInt32((uint)config.NumLayers)),
            new($"{a}.feed_forward_length", GgufValue.UInt32((uint)config.IntermediateSize)),
            new($"{a}.attention.head_count", GgufValue.UInt32((uint)config.NumHeads)),
            new($"{a}.attention.head_count_kv", GgufValue.UInt32((uint)config.NumKvHeads)),
            new($"{a}.rope.dimension_count", GgufValue.UInt32((uint)config.HeadDim)),
            new($"{a}.attention.layer_norm_rms_epsilon", GgufValue.Float32(config.RmsNormEps)),
        };
        list.AddRange(SyntheticModel.TokenizerMetadata(BuiltInVocabulary.Create(config.VocabSize)));
        return list;
    }

    /// <summary>Dense F32 tensors for every name the config needs, filled with a recognizable pattern.</summary>
    public static List<GgufTensorData> LlamaTensors(LlamaConfig config, bool includeOutput = true)
    {
        var list = new List<GgufTensorData>();
        int index = 0;
        foreach (var (name, shape) in LlamaTensorNames.Expected(config, includeOutput))
        {
            long count = shape.Aggregate(1L, (x, y) => x * y);
            float[] values = Enumerable.Range(0, (int)count).Select(i => index + i * 1e-3f).ToArray();
            list.Add(GgufTensorData.FromFloats(name, shape, values));
            index++;
        }
        return list;
    }

    /// <summary>Writes a small, valid Llama GGUF; the callbacks may edit metadata and tensors first.</summary>
    public static GgufLayout WriteLlamaGguf(string path, LlamaConfig? config = null,
                                            Action<List<KeyValuePair<string, GgufValue>>>? editMetadata = null,
                                            Action<List<GgufTensorData>>? editTensors = null)
    {
        config ??= SmallConfig;
        var metadata = LlamaMetadata(config);
        editMetadata?.Invoke(metadata);
        var tensors = LlamaTensors(config);
        editTensors?.Invoke(tensors);
        return GgufWriter.Write(path, metadata, tensors);
    }

    public static void Replace(this List<KeyValuePair<string, GgufValue>> metadata, string key, GgufValue value)
    {
        int i = metadata.FindIndex(kv => kv.Key == key);
        if (i < 0) metadata.Add(new(key, value));
        else metadata[i] = new(key, value);
    }

    public static void Remove(this List<KeyValuePair<string, GgufValue>> metadata, string key) =>
        metadata.RemoveAll(kv => kv.Key == key);

    public static void PatchU32(string path, long offset, uint value)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        f.Position = offset;
        f.Write(b);
    }

    public static void PatchU64(string path, long offset, ulong value)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        f.Position = offset;
        f.Write(b);
    }

    public static void Truncate(string path, long length)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        f.SetLength(length);
    }

    /// <summary>One safetensors entry; <paramref name="Offsets"/> overrides the computed data_offsets.</summary>
    public sealed record SafeTensor(string Name, string DType, long[] Shape, byte[] Data, long[]? Offsets = null);

    /// <summary>Writes a safetensors file; <paramref name="headerOverride"/> replaces the JSON header verbatim.</summary>
    public static void WriteSafeTensors(string path, IReadOnlyList<SafeTensor> tensors, string? headerOverride = null,
                                        ulong? headerLengthOverride = null)
    {
        var data = new MemoryStream();
        var header = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        foreach (var t in tensors)
        {
            long begin = data.Length;
            data.Write(t.Data);
            long[] offsets = t.Offsets ?? [begin, data.Length];
            header.Append($",{JsonSerializer.Serialize(t.Name, TestJsonContext.Default.String)}:{{\"dtype\":\"{t.DType}\",\"shape\":[{string.Join(",", t.Shape)}],\"data_offsets\":[{offsets[0]},{offsets[1]}]}}");
        }
        header.Append('}');
        byte[] headerBytes = Encoding.UTF8.GetBytes(headerOverride ?? header.ToString());
        using var f = new FileStream(path, FileMode.Create);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, headerLengthOverride ?? (ulong)headerBytes.Length);
        f.Write(length);
        f.Write(headerBytes);
        data.Position = 0;
        data.CopyTo(f);
    }

    /// <summary>Copies the stories260K HF folder into <paramref name="destination"/>.</summary>
    public static void CopyFolder(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (string file in Directory.GetFiles(source))
            System.IO.File.Copy(file, Path.Combine(destination, Path.GetFileName(file)), overwrite: true);
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
[System.Text.Json.Serialization.JsonSerializable(typeof(TokenizerCaseFile))]
internal sealed partial class TestJsonContext : System.Text.Json.Serialization.JsonSerializerContext;

/// <summary>reference/tokenizer_cases.json.</summary>
internal sealed class TokenizerCaseFile
{
    [System.Text.Json.Serialization.JsonPropertyName("cases")]
    public List<TokenizerCase> Cases { get; set; } = [];
}

internal sealed class TokenizerCase
{
    [System.Text.Json.Serialization.JsonPropertyName("text")]
    public string Text { get; set; } = "";

    [System.Text.Json.Serialization.JsonPropertyName("ids_with_bos")]
    public int[] IdsWithBos { get; set; } = [];

    [System.Text.Json.Serialization.JsonPropertyName("pieces")]
    public string[] Pieces { get; set; } = [];

    public override string ToString() => JsonSerializer.Serialize(Text, TestJsonContext.Default.String);
}
