// SafeTensorsFile.cs: a strict, memory-mapped reader of the safetensors format: an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__"},
// then the data. Header length, offsets and each tensor's byte size are checked against the file.
using System.Buffers.Binary;
using System.Text.Json;

namespace SharpInfer.Models.SafeTensors;

/// <summary>One tensor entry of a safetensors header.</summary>
/// <param name="Name">Name as stored.</param>
/// <param name="DType">dtype string as stored ("F32", "BF16", "I8"...).</param>
/// <param name="Shape">Row-major shape.</param>
/// <param name="FileOffset">Absolute offset of the first byte.</param>
/// <param name="ByteLength">Size in bytes.</param>
internal sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long FileOffset, long ByteLength);

internal sealed class SafeTensorsFile : IDisposable
{
    // The format's own limit; also keeps a hostile header length from driving a huge parse.
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    public MappedFile File { get; }
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafeTensorsFile(MappedFile file, List<SafeTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        File = file;
        Tensors = tensors;
        Metadata = metadata;
    }

    public string Path => File.Path;

    public void Dispose() => File.Dispose();

    /// <summary>Element size of a safetensors dtype string, or 0 when unknown.</summary>
    public static int ElementSize(string dtype) => dtype switch
    {
        "F64" or "I64" or "U64" => 8,
        "F32" or "I32" or "U32" => 4,
        "F16" or "BF16" or "I16" or "U16" => 2,
        "I8" or "U8" or "BOOL" or "F8_E4M3" or "F8_E5M2" => 1,
        _ => 0,
    };

    public static SafeTensorsFile Open(string path)
    {
        var file = MappedFile.Open(path);
        try
        {
            return Parse(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static SafeTensorsFile Parse(MappedFile file)
    {
        ModelFormatException Error(string detail, Exception? inner = null) => new(file.Path, detail, inner);

        if (file.Length < 8) throw Error($"truncated safetensors file: {file.Length} bytes, not even the 8-byte header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file.Span(0, 8));
        if (headerLength > (ulong)(file.Length - 8))
            throw Error($"safetensors header length {headerLength} runs past the end of the file ({file.Length} bytes): truncated or not a safetensors file");
        if (headerLength > MaxHeaderBytes)
            throw Error($"safetensors header length {headerLength} exceeds the format's limit of {MaxHeaderBytes} bytes");
        long dataStart = 8 + (long)headerLength;
        long dataLength = file.Length - dataStart;

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(file.Span(8, (int)headerLength).ToArray());
        }
        catch (JsonException e)
        {
            throw Error($"safetensors header is not valid JSON: {e.Message}", e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw Error($"safetensors header must be a JSON object, found {document.RootElement.ValueKind}");
            var tensors = new List<SafeTensorInfo>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (!names.Add(property.Name)) throw Error($"duplicate tensor '{property.Name}' in safetensors header");
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind != JsonValueKind.Object)
                        throw Error("safetensors __metadata__ must be an object of strings");
                    foreach (var m in property.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                tensors.Add(ParseTensor(property, dataStart, dataLength, Error));
            }
            return new SafeTensorsFile(file, tensors, metadata);
        }
    }

    private static SafeTensorInfo ParseTensor(JsonProperty property, long dataStart, long dataLength,
                                              Func<string, Exception?, ModelFormatException> error)
    {
        string name = property.Name;
        ModelFormatException Fail(string detail) => error($"tensor '{name}': {detail}", null);

        var entry = property.Value;
        if (entry.ValueKind != JsonValueKind.Object) throw Fail("header entry is not an object");
        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Fail("missing string field 'dtype'");
        string dtype = dtypeElement.GetString()!;
        int elementSize = ElementSize(dtype);
        if (elementSize == 0) throw Fail($"unknown dtype '{dtype}'");

        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw Fail("missing array field 'shape'");
        var shape = new long[shapeElement.GetArrayLength()];
        int d = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long value) || value < 0)
                throw Fail($"shape entry {d} is not a non-negative integer: {dim.GetRawText()}");
            shape[d++] = value;
        }

        if (!entry.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw Fail("missing field 'data_offsets' [begin, end]");
        if (!offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Fail($"invalid data_offsets {offsets.GetRawText()}");
        if (end > dataLength)
            throw Fail($"data_offsets [{begin}, {end}) run past the end of the data section ({dataLength} bytes): truncated file or bad header");

        long expected;
        try
        {
            expected = elementSize;
            foreach (long dim in shape) expected = checked(expected * dim);
        }
        catch (OverflowException)
        {
            throw Fail($"shape [{string.Join(", ", shape)}] overflows");
        }
        if (end - begin != expected)
            throw Fail($"data_offsets span {end - begin} bytes but shape [{string.Join(", ", shape)}] {dtype} needs {expected}: the header lies about the size");
        return new SafeTensorInfo(name, dtype, shape, dataStart + begin, end - begin);
    }
}
