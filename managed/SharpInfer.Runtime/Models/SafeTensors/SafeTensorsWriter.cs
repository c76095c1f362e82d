// SafeTensorsWriter.cs: writes a safetensors file: 8-byte header length, a JSON header (written with
// Utf8JsonWriter, no reflection), padded with spaces so the data starts 64-byte aligned, then the
// tensors back to back with no holes (as the format requires). Tensors are ordered by element size,
// largest first, so every tensor starts aligned to its element size and f32 arrays can be used in
// place from a memory map.
using System.Buffers.Binary;
using System.Text.Json;

namespace SharpInfer.Models.SafeTensors;

/// <summary>One tensor to write: name, safetensors dtype string ("F32", "I8", "U8", ...), shape and its bytes.</summary>
public sealed record SafeTensorsEntry(string Name, string DType, long[] Shape, byte[] Data);

public static class SafeTensorsWriter
{
    public const int DataAlignment = 64;

    /// <summary>Writes <paramref name="path"/>; <paramref name="metadata"/> becomes "__metadata__".</summary>
    public static void Write(string path, IReadOnlyList<SafeTensorsEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (!names.Add(t.Name)) throw new ArgumentException($"duplicate tensor name '{t.Name}'");
            int size = SafeTensorsFile.ElementSize(t.DType);
            if (size == 0) throw new ArgumentException($"tensor '{t.Name}': unknown dtype '{t.DType}'");
            long expected = t.Shape.Aggregate((long)size, (a, d) => checked(a * d));
            if (expected != t.Data.LongLength)
                throw new ArgumentException($"tensor '{t.Name}': {t.Data.LongLength} bytes do not match {t.DType} [{string.Join(", ", t.Shape)}] ({expected} bytes)");
        }
        // Stable order: element size descending, then the caller's order.
        var ordered = tensors.Select((t, i) => (t, i)).OrderByDescending(x => SafeTensorsFile.ElementSize(x.t.DType)).ThenBy(x => x.i)
                             .Select(x => x.t).ToList();

        var header = new MemoryStream();
        using (var w = new Utf8JsonWriter(header))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) w.WriteString(key, value);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in ordered)
            {
                w.WriteStartObject(t.Name);
                w.WriteString("dtype", t.DType);
                w.WriteStartArray("shape");
                foreach (long d in t.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.Data.LongLength);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.Data.LongLength;
            }
            w.WriteEndObject();
        }
        long headerLength = header.Length;
        long padded = (8 + headerLength + DataAlignment - 1) / DataAlignment * DataAlignment - 8;

        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        file.Write(length);
        header.Position = 0;
        header.CopyTo(file);
        for (long i = headerLength; i < padded; i++) file.WriteByte((byte)' ');
        foreach (var t in ordered) file.Write(t.Data);
    }
}
