// GgufFile.cs: a strict GGUF v2/v3 reader over a memory-mapped file: header, metadata, tensor
// infos and the data section. Every read is bounds-checked against the file length and every
// count is checked against the bytes left before anything is allocated, so a truncated or
// hostile file becomes a ModelFormatException, never a crash or a huge allocation.
using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace SharpInfer.Models.Gguf;

/// <summary>One tensor's entry in a GGUF file.</summary>
public sealed class GgufTensorInfo
{
    internal GgufTensorInfo(string name, GgmlType type, long[] dims, long relativeOffset, long fileOffset, long byteLength, long elementCount)
    {
        Name = name;
        Type = type;
        Dims = dims;
        RelativeOffset = relativeOffset;
        FileOffset = fileOffset;
        ByteLength = byteLength;
        ElementCount = elementCount;
    }

    public string Name { get; }
    public GgmlType Type { get; }

    /// <summary>Dims as stored: ne0 (innermost, contiguous) first.</summary>
    public long[] Dims { get; }

    /// <summary>Row-major shape, outermost first (Dims reversed).</summary>
    public long[] Shape => Dims.Reverse().ToArray();

    /// <summary>Offset inside the data section, as stored.</summary>
    public long RelativeOffset { get; }

    /// <summary>Absolute offset in the file.</summary>
    public long FileOffset { get; }

    public long ByteLength { get; }
    public long ElementCount { get; }

    public override string ToString() => $"{Name} {GgmlTypeInfo.Name(Type)} ne=[{string.Join(", ", Dims)}]";
}

/// <summary>A parsed, memory-mapped GGUF file. Disposing it unmaps the file.</summary>
public sealed class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" read as a little-endian u32
    public const int DefaultAlignment = 32;

    // Far above anything real, far below anything that could exhaust memory by itself.
    private const int MaxKeyOrNameBytes = 1 << 16;
    private const int MaxArrayNesting = 4;

    private readonly Dictionary<string, GgufValue> _metadata;
    private readonly Dictionary<string, GgufTensorInfo> _tensorsByName;

    internal MappedFile File { get; }

    public string Path => File.Path;
    public uint Version { get; }
    public int Alignment { get; }

    /// <summary>Absolute file offset where the data section starts.</summary>
    public long DataOffset { get; }

    /// <summary>Metadata keys in file order.</summary>
    public IReadOnlyList<string> MetadataKeys { get; }
    public IReadOnlyDictionary<string, GgufValue> Metadata => _metadata;

    /// <summary>Tensor infos in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    private GgufFile(MappedFile file, uint version, int alignment, long dataOffset, List<string> keys,
                     Dictionary<string, GgufValue> metadata, List<GgufTensorInfo> tensors)
    {
        File = file;
        Version = version;
        Alignment = alignment;
        DataOffset = dataOffset;
        MetadataKeys = keys;
        _metadata = metadata;
        Tensors = tensors;
        _tensorsByName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>Maps and parses <paramref name="path"/>; throws <see cref="ModelFormatException"/> on any defect.</summary>
    public static GgufFile Open(string path)
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

    public bool TryGetTensor(string name, out GgufTensorInfo info) => _tensorsByName.TryGetValue(name, out info!);

    public bool TryGetValue(string key, out GgufValue value) => _metadata.TryGetValue(key, out value!);

    /// <summary>A string value, null when absent; wrong type is an error.</summary>
    public string? GetString(string key)
    {
        if (!_metadata.TryGetValue(key, out var v)) return null;
        return v.Value as string ?? throw WrongType(key, v, "string");
    }

    /// <summary>An integer value of any integer type, null when absent; wrong type is an error.</summary>
    public long? GetInteger(string key)
    {
        if (!_metadata.TryGetValue(key, out var v)) return null;
        return v.TryGetInt64(out long l) ? l : throw WrongType(key, v, "integer");
    }

    /// <summary>A float or integer value, null when absent; wrong type is an error.</summary>
    public double? GetNumber(string key)
    {
        if (!_metadata.TryGetValue(key, out var v)) return null;
        return v.TryGetDouble(out double d) ? d : throw WrongType(key, v, "number");
    }

    public bool? GetBool(string key)
    {
        if (!_metadata.TryGetValue(key, out var v)) return null;
        return v.Value is bool b ? b : throw WrongType(key, v, "bool");
    }

    /// <summary>An array value whose CLR array type is <typeparamref name="T"/>[], null when absent.</summary>
    public T[]? GetArray<T>(string key)
    {
        if (!_metadata.TryGetValue(key, out var v)) return null;
        return v.Value as T[] ?? throw WrongType(key, v, $"array of {typeof(T).Name}");
    }

    /// <summary>An array of any integer element type, widened to long; null when absent.</summary>
    public long[]? GetIntegerArray(string key)
    {
        if (!_metadata.TryGetValue(key, out var v)) return null;
        return v.Value switch
        {
            int[] a => Array.ConvertAll(a, x => (long)x),
            uint[] a => Array.ConvertAll(a, x => (long)x),
            long[] a => a,
            short[] a => Array.ConvertAll(a, x => (long)x),
            ushort[] a => Array.ConvertAll(a, x => (long)x),
            sbyte[] a => Array.ConvertAll(a, x => (long)x),
            byte[] a when v.Type == GgufValueType.Array => Array.ConvertAll(a, x => (long)x),
            _ => throw WrongType(key, v, "array of integers"),
        };
    }

    /// <summary>An array of f32 or f64 elements as float; null when absent.</summary>
    public float[]? GetFloatArray(string key)
    {
        if (!_metadata.TryGetValue(key, out var v)) return null;
        return v.Value switch
        {
            float[] a => a,
            double[] a => Array.ConvertAll(a, x => (float)x),
            _ => throw WrongType(key, v, "array of floats"),
        };
    }

    private ModelFormatException WrongType(string key, GgufValue v, string expected) =>
        new(Path, $"metadata key '{key}' has type {v.TypeName}, expected {expected}");

    public void Dispose() => File.Dispose();

    // ---- parsing ---------------------------------------------------------------------------

    private static GgufFile Parse(MappedFile file)
    {
        var r = new Cursor(file);
        uint magic = r.U32("the GGUF magic");
        if (magic != Magic)
        {
            var bytes = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, magic);
            throw r.Error($"bad magic {Printable(bytes)}: not a GGUF file (expected \"GGUF\")");
        }
        uint version = r.U32("the GGUF version");
        if (version != 2 && version != 3)
        {
            string hint = version > 0xFFFF && BinaryPrimitives.ReverseEndianness(version) is 2 or 3
                ? " (this looks like a big-endian GGUF, which is not supported)" : "";
            throw r.Error($"unsupported GGUF version {version} (supported: 2, 3){hint}");
        }
        ulong tensorCount = r.U64("the tensor count");
        ulong kvCount = r.U64("the metadata count");

        // Minimum encoded sizes: a KV is key length(8) + type(4) + 1 byte value; a tensor info
        // is name length(8) + n_dims(4) + one dim(8) + type(4) + offset(8).
        long left = file.Length - r.Position;
        if (kvCount > (ulong)left / 13)
            throw r.Error($"metadata count {kvCount} is impossible for a file of {file.Length} bytes (corrupt or truncated header)");
        if (tensorCount > (ulong)left / 32)
            throw r.Error($"tensor count {tensorCount} is impossible for a file of {file.Length} bytes (corrupt or truncated header)");

        var keys = new List<string>((int)kvCount);
        var metadata = new Dictionary<string, GgufValue>((int)kvCount, StringComparer.Ordinal);
        for (ulong i = 0; i < kvCount; i++)
        {
            string key = r.String($"metadata key #{i}", MaxKeyOrNameBytes);
            uint rawType = r.U32($"the type of metadata '{key}'");
            var value = ReadValue(ref r, (GgufValueType)rawType, key, depth: 0);
            if (!metadata.TryAdd(key, value))
                throw r.Error($"duplicate metadata key '{key}'");
            keys.Add(key);
        }

        int alignment = DefaultAlignment;
        if (metadata.TryGetValue("general.alignment", out var alignValue))
        {
            if (!alignValue.TryGetInt64(out long a))
                throw r.Error($"general.alignment has type {alignValue.TypeName}, expected an integer");
            if (a <= 0 || a > (1 << 24) || !BitOperations.IsPow2(a))
                throw r.Error($"general.alignment {a} is not a power of two in [1, 2^24]");
            alignment = (int)a;
        }

        var infos = new List<(string Name, GgmlType Type, long[] Dims, ulong Offset)>((int)tensorCount);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (ulong i = 0; i < tensorCount; i++)
        {
            string name = r.String($"the name of tensor info #{i}", MaxKeyOrNameBytes);
            string what = $"tensor '{name}'";
            if (!seen.Add(name)) throw r.Error($"duplicate tensor name '{name}'");
            uint nDims = r.U32($"the dim count of {what}");
            if (nDims == 0 || nDims > 4)
                throw r.Error($"{what} has {nDims} dims (supported: 1 to 4)");
            var dims = new long[nDims];
            for (int d = 0; d < nDims; d++)
            {
                ulong dim = r.U64($"dim {d} of {what}");
                if (dim == 0 || dim > long.MaxValue)
                    throw r.Error($"{what} has invalid dim {d} = {(dim > long.MaxValue ? ((long)dim).ToString() : dim.ToString())} (dims must be positive)");
                dims[d] = (long)dim;
            }
            var type = (GgmlType)r.U32($"the type of {what}");
            ulong offset = r.U64($"the data offset of {what}");
            infos.Add((name, type, dims, offset));
        }

        long dataOffset = AlignUp(r.Position, alignment);
        if (infos.Count > 0 && dataOffset > file.Length)
            throw r.Error($"file ends at byte {file.Length}, before its data section at {dataOffset}: truncated file");

        var tensors = new List<GgufTensorInfo>(infos.Count);
        foreach (var (name, type, dims, offset) in infos)
            tensors.Add(ValidateTensor(file, name, type, dims, offset, dataOffset, alignment));

        return new GgufFile(file, version, alignment, dataOffset, keys, metadata, tensors);
    }

    private static GgufTensorInfo ValidateTensor(MappedFile file, string name, GgmlType type, long[] dims, ulong offset,
                                                 long dataOffset, int alignment)
    {
        ModelFormatException Error(string detail) => new(file.Path, $"tensor '{name}': {detail}");

        if (!GgmlTypeInfo.TryGetBlockLayout(type, out int blockElements, out int blockBytes))
            throw Error($"unknown ggml tensor type id {(uint)type}");
        long elements;
        long bytes;
        try
        {
            elements = 1;
            foreach (long d in dims) elements = checked(elements * d);
            if (dims[0] % blockElements != 0)
                throw Error($"innermost dim {dims[0]} is not a multiple of the {GgmlTypeInfo.Name(type)} block size {blockElements}");
            bytes = checked(elements / blockElements * blockBytes);
        }
        catch (OverflowException)
        {
            throw Error($"size of [{string.Join(", ", dims)}] {GgmlTypeInfo.Name(type)} overflows");
        }
        if (offset % (ulong)alignment != 0)
            throw Error($"data offset {offset} is not aligned to {alignment} bytes");
        long available = file.Length - dataOffset;
        if (offset > (ulong)Math.Max(available, 0))
            throw Error($"data offset {offset} is outside the file (data section is {Math.Max(available, 0)} bytes)");
        if (bytes > available - (long)offset)
            throw Error($"data [{offset}, {offset} + {bytes}) runs past the end of the file ({file.Length} bytes; data section has {available}): truncated file or tensor too large");
        return new GgufTensorInfo(name, type, dims, (long)offset, dataOffset + (long)offset, bytes, elements);
    }

    private static GgufValue ReadValue(ref Cursor r, GgufValueType type, string key, int depth)
    {
        string what = $"the value of '{key}'";
        switch (type)
        {
            case GgufValueType.UInt8: return GgufValue.UInt8(r.Bytes(1, what)[0]);
            case GgufValueType.Int8: return GgufValue.Int8((sbyte)r.Bytes(1, what)[0]);
            case GgufValueType.UInt16: return GgufValue.UInt16(BinaryPrimitives.ReadUInt16LittleEndian(r.Bytes(2, what)));
            case GgufValueType.Int16: return GgufValue.Int16(BinaryPrimitives.ReadInt16LittleEndian(r.Bytes(2, what)));
            case GgufValueType.UInt32: return GgufValue.UInt32(r.U32(what));
            case GgufValueType.Int32: return GgufValue.Int32((int)r.U32(what));
            case GgufValueType.Float32: return GgufValue.Float32(BinaryPrimitives.ReadSingleLittleEndian(r.Bytes(4, what)));
            case GgufValueType.Bool:
                byte b = r.Bytes(1, what)[0];
                if (b > 1) throw r.Error($"metadata '{key}' has bool byte {b} (expected 0 or 1)");
                return GgufValue.Bool(b == 1);
            case GgufValueType.String: return GgufValue.String(r.String(what, int.MaxValue));
            case GgufValueType.UInt64: return GgufValue.UInt64(r.U64(what));
            case GgufValueType.Int64: return GgufValue.Int64((long)r.U64(what));
            case GgufValueType.Float64: return GgufValue.Float64(BinaryPrimitives.ReadDoubleLittleEndian(r.Bytes(8, what)));
            case GgufValueType.Array:
                return ReadArray(ref r, key, depth);
            default:
                throw r.Error($"metadata '{key}' has unknown value type {(uint)type}");
        }
    }

    private static GgufValue ReadArray(ref Cursor r, string key, int depth)
    {
        if (depth >= MaxArrayNesting) throw r.Error($"metadata '{key}' nests arrays deeper than {MaxArrayNesting}");
        var elementType = (GgufValueType)r.U32($"the array element type of '{key}'");
        ulong count = r.U64($"the array length of '{key}'");
        int minElement = elementType switch
        {
            GgufValueType.String => 8,
            GgufValueType.Array => 12,
            _ => GgufValue.ScalarSize(elementType),
        };
        if (minElement == 0) throw r.Error($"metadata '{key}' is an array of unknown element type {(uint)elementType}");
        long left = r.Remaining;
        if (count > (ulong)(left / minElement) || count > (ulong)Array.MaxLength)
            throw r.Error($"metadata '{key}' claims {count} array elements but only {left} bytes are left: truncated or corrupt");
        int n = (int)count;
        string what = $"the elements of '{key}'";
        switch (elementType)
        {
            case GgufValueType.String:
            {
                var a = new string[n];
                for (int i = 0; i < n; i++) a[i] = r.String($"element {i} of '{key}'", int.MaxValue);
                return GgufValue.Array(a);
            }
            case GgufValueType.Array:
            {
                var a = new GgufValue[n];
                for (int i = 0; i < n; i++) a[i] = ReadArray(ref r, key, depth + 1);
                return GgufValue.Array(GgufValueType.Array, a);
            }
            case GgufValueType.Bool:
            {
                var raw = r.Bytes(n, what);
                var a = new bool[n];
                for (int i = 0; i < n; i++)
                {
                    if (raw[i] > 1) throw r.Error($"metadata '{key}' element {i} has bool byte {raw[i]}");
                    a[i] = raw[i] == 1;
                }
                return GgufValue.Array(a);
            }
            case GgufValueType.UInt8: return GgufValue.Array(r.Bytes(n, what).ToArray());
            case GgufValueType.Int8: return GgufValue.Array(ReadPrimitives<sbyte>(ref r, n, what));
            case GgufValueType.UInt16: return GgufValue.Array(ReadPrimitives<ushort>(ref r, n, what));
            case GgufValueType.Int16: return GgufValue.Array(ReadPrimitives<short>(ref r, n, what));
            case GgufValueType.UInt32: return GgufValue.Array(ReadPrimitives<uint>(ref r, n, what));
            case GgufValueType.Int32: return GgufValue.Array(ReadPrimitives<int>(ref r, n, what));
            case GgufValueType.Float32: return GgufValue.Array(ReadPrimitives<float>(ref r, n, what));
            case GgufValueType.UInt64: return GgufValue.Array(ReadPrimitives<ulong>(ref r, n, what));
            case GgufValueType.Int64: return GgufValue.Array(ReadPrimitives<long>(ref r, n, what));
            case GgufValueType.Float64: return GgufValue.Array(ReadPrimitives<double>(ref r, n, what));
            default: throw r.Error($"metadata '{key}' is an array of unknown element type {(uint)elementType}");
        }
    }

    // GGUF is little-endian and so is every platform .NET runs this on (checked at the top of Cursor).
    private static T[] ReadPrimitives<T>(ref Cursor r, int n, string what) where T : unmanaged
    {
        int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        var bytes = r.Bytes(checked(n * size), what);
        return System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(bytes).ToArray();
    }

    internal static long AlignUp(long value, long alignment) => (value + alignment - 1) / alignment * alignment;

    private static string Printable(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder("\"");
        foreach (byte b in bytes) sb.Append(b is >= 0x20 and < 0x7F ? ((char)b).ToString() : $"\\x{b:X2}");
        return sb.Append('"').ToString();
    }

    /// <summary>Sequential bounds-checked reader over the mapped file.</summary>
    private ref struct Cursor
    {
        private readonly MappedFile _file;
        public long Position;

        public Cursor(MappedFile file)
        {
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("GGUF reading needs a little-endian host");
            _file = file;
            Position = 0;
        }

        public readonly long Remaining => _file.Length - Position;

        public readonly ModelFormatException Error(string detail) => new(_file.Path, detail);

        public ReadOnlySpan<byte> Bytes(int count, string what)
        {
            if (count < 0 || count > Remaining)
                throw Error($"truncated file: reading {what} needs {count} bytes at offset {Position}, but the file is only {_file.Length} bytes");
            var span = _file.Span(Position, count);
            Position += count;
            return span;
        }

        public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4, what));
        public ulong U64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8, what));

        public string String(string what, int maxBytes)
        {
            ulong length = U64($"the length of {what}");
            if (length > (ulong)Remaining)
                throw Error($"truncated file: {what} claims {length} bytes at offset {Position}, but only {Remaining} bytes are left");
            if (length > (ulong)maxBytes)
                throw Error($"{what} is {length} bytes long (limit {maxBytes})");
            return Encoding.UTF8.GetString(Bytes((int)length, what));
        }
    }
}
