// JsonFile.cs: typed, error-reporting reads from a JSON object (config.json, tokenizer_config.json,
// generation_config.json, the safetensors index) through JsonDocument: no reflection, so it stays
// trim- and NativeAOT-safe.
using System.Text.Json;

namespace SharpInfer.Models.HuggingFace;

internal sealed class JsonFile
{
    private static readonly JsonDocumentOptions Options = new()
    {
        AllowTrailingCommas = true,
        CommentHandling = JsonCommentHandling.Skip,
    };

    public string Path { get; }
    public JsonElement Root { get; }

    private JsonFile(string path, JsonElement root)
    {
        Path = path;
        Root = root;
    }

    /// <summary>Reads and parses <paramref name="path"/>; it must hold a JSON object.</summary>
    public static JsonFile Load(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(path, $"cannot read: {e.Message}", e);
        }
        try
        {
            using var doc = JsonDocument.Parse(bytes, Options);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(path, $"expected a JSON object, found {doc.RootElement.ValueKind}");
            return new JsonFile(path, doc.RootElement.Clone());
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(path, $"invalid JSON: {e.Message}", e);
        }
    }

    /// <summary>Loads the file if it exists, else null.</summary>
    public static JsonFile? TryLoad(string path) => File.Exists(path) ? Load(path) : null;

    private bool TryGet(string name, out JsonElement value) =>
        Root.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    private ModelFormatException WrongType(string name, JsonElement value, string expected) =>
        new(Path, $"field '{name}' must be {expected} (got {value.ValueKind}: {Truncate(value.GetRawText())})");

    private static string Truncate(string s) => s.Length > 60 ? s[..57] + "..." : s;

    public bool Has(string name) => TryGet(name, out _);

    public long? Integer(string name)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind == JsonValueKind.Number)
        {
            if (v.TryGetInt64(out long l)) return l;
            // Some configs write integers as 4096.0.
            if (v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) < 9e15) return (long)d;
        }
        throw WrongType(name, v, "an integer");
    }

    /// <summary>A positive int field; missing gives null.</summary>
    public int? PositiveInt(string name)
    {
        long? v = Integer(name);
        if (v is null) return null;
        if (v <= 0 || v > int.MaxValue)
            throw new ModelFormatException(Path, $"field '{name}' = {v} is out of range (must be in [1, {int.MaxValue}])");
        return (int)v;
    }

    public int RequiredPositiveInt(string name) =>
        PositiveInt(name) ?? throw new ModelFormatException(Path, $"missing required field '{name}'");

    public double? Number(string name)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d)) return d;
        throw WrongType(name, v, "a number");
    }

    public bool? Bool(string name)
    {
        if (!TryGet(name, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw WrongType(name, v, "true or false"),
        };
    }

    public string? String(string name)
    {
        if (!TryGet(name, out var v)) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw WrongType(name, v, "a string");
    }

    /// <summary>An int or a list of ints (eos_token_id in generation_config.json).</summary>
    public int[] IntOrIntList(string name)
    {
        if (!TryGet(name, out var v)) return [];
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int single)) return [single];
        if (v.ValueKind == JsonValueKind.Array)
        {
            var list = new List<int>();
            foreach (var e in v.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int id))
                    throw WrongType(name, v, "an integer or a list of integers");
                list.Add(id);
            }
            return list.ToArray();
        }
        throw WrongType(name, v, "an integer or a list of integers");
    }

    /// <summary>A special-token field: "&lt;s&gt;" or {"content": "&lt;s&gt;", ...}.</summary>
    public string? TokenText(string name)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind == JsonValueKind.String) return v.GetString();
        if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
            return c.GetString();
        throw WrongType(name, v, "a string or an object with 'content'");
    }

    /// <summary>A nested object, or null.</summary>
    public JsonElement? Object(string name)
    {
        if (!TryGet(name, out var v)) return null;
        return v.ValueKind == JsonValueKind.Object ? v : throw WrongType(name, v, "an object");
    }

    public JsonElement? Element(string name) => TryGet(name, out var v) ? v : null;
}
