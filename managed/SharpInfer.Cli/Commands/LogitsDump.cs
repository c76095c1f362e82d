// LogitsDump.cs: --dump-logits: float32 rows (little-endian) and a JSON sidecar naming the
// token at each position, so any runtime's logits can be compared position by position.
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace SharpInfer.Cli.Commands;

internal sealed class LogitsDump(string path, int vocabSize) : IDisposable
{
    private readonly FileStream _rows = new(path, FileMode.Create, FileAccess.Write);
    private readonly List<int> _tokens = [];

    public void Add(int position, int tokenId, ReadOnlySpan<float> logits)
    {
        if (position != _tokens.Count) throw new InvalidOperationException($"logits out of order: position {position}");
        _tokens.Add(tokenId);
        if (BitConverter.IsLittleEndian)
        {
            _rows.Write(MemoryMarshal.AsBytes(logits));
            return;
        }
        Span<byte> bytes = stackalloc byte[4];
        foreach (float value in logits)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
            _rows.Write(bytes);
        }
    }

    /// <summary>Writes the sidecar PATH.json.</summary>
    public void Complete()
    {
        _rows.Flush();
        using var sidecar = new FileStream(path + ".json", FileMode.Create, FileAccess.Write);
        using var w = new Utf8JsonWriter(sidecar, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        w.WriteStartObject();
        w.WriteString("file", Path.GetFileName(path));
        w.WriteString("dtype", "float32");
        w.WriteString("byte_order", "little");
        w.WriteNumber("rows", _tokens.Count);
        w.WriteNumber("vocab_size", vocabSize);
        w.WriteString("layout", "row p holds the next-token logits after the token at position p");
        w.WriteStartArray("token_ids");
        foreach (int id in _tokens) w.WriteNumberValue(id);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    public void Dispose() => _rows.Dispose();
}
