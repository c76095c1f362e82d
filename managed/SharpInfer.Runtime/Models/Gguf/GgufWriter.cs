// GgufWriter.cs: writes GGUF v3 files (any metadata type, dense or raw-typed tensors, padded to
// the alignment). Tensor data is streamed from callbacks, so multi-GB synthetic models never sit
// in memory. Tests use the returned layout to patch precise fields when crafting bad files.
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace SharpInfer.Models.Gguf;

/// <summary>A tensor to write: its row-major shape, ggml type, byte length and a data producer.</summary>
public sealed class GgufTensorData
{
    /// <param name="name">Tensor name, e.g. <c>blk.0.attn_q.weight</c>.</param>
    /// <param name="shape">Row-major, outermost first ([out, in] for a linear weight); written ne0-first.</param>
    /// <param name="type">ggml type id written into the tensor info.</param>
    /// <param name="byteLength">Exactly how many bytes <paramref name="writeData"/> writes.</param>
    /// <param name="writeData">Writes the tensor's bytes to the stream it is given.</param>
    public GgufTensorData(string name, long[] shape, GgmlType type, long byteLength, Action<Stream> writeData)
    {
        Name = name;
        Shape = shape;
        Type = type;
        ByteLength = byteLength;
        WriteData = writeData;
    }

    public string Name { get; }
    public long[] Shape { get; }
    public GgmlType Type { get; }
    public long ByteLength { get; }
    public Action<Stream> WriteData { get; }

    /// <summary>A dense tensor from float values, stored as <paramref name="dtype"/>.</summary>
    public static GgufTensorData FromFloats(string name, long[] shape, float[] values, TensorDType dtype = TensorDType.F32)
    {
        byte[] bytes = EncodeFloats(values, dtype);
        return new GgufTensorData(name, shape, GgmlTypeInfo.FromDType(dtype), bytes.Length, s => s.Write(bytes));
    }

    /// <summary>A tensor of any ggml type from its raw bytes (sizes are checked against the type's layout).</summary>
    public static GgufTensorData FromBytes(string name, long[] shape, GgmlType type, byte[] data) =>
        new(name, shape, type, data.Length, s => s.Write(data));

    /// <summary>Little-endian encoding of <paramref name="values"/> as <paramref name="dtype"/>.</summary>
    public static byte[] EncodeFloats(ReadOnlySpan<float> values, TensorDType dtype)
    {
        var bytes = new byte[values.Length * dtype.ElementSize()];
        EncodeFloats(values, dtype, bytes);
        return bytes;
    }

    internal static void EncodeFloats(ReadOnlySpan<float> values, TensorDType dtype, Span<byte> destination)
    {
        switch (dtype)
        {
            case TensorDType.F32:
                MemoryMarshal.AsBytes(values).CopyTo(destination);
                break;
            case TensorDType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(destination);
                for (int i = 0; i < values.Length; i++) halves[i] = (Half)values[i];
                break;
            case TensorDType.BF16:
                var raw = MemoryMarshal.Cast<byte, ushort>(destination);
                for (int i = 0; i < values.Length; i++) raw[i] = TensorDTypeExtensions.SingleToBFloat16(values[i]);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype));
        }
    }
}

/// <summary>Where the writer put each part of a file (absolute byte offsets).</summary>
public sealed class GgufLayout
{
    internal GgufLayout(long metadataOffset, long tensorInfosOffset, long dataOffset, long fileLength,
                        IReadOnlyDictionary<string, GgufTensorLayout> tensors)
    {
        MetadataOffset = metadataOffset;
        TensorInfosOffset = tensorInfosOffset;
        DataOffset = dataOffset;
        FileLength = fileLength;
        Tensors = tensors;
    }

    /// <summary>First metadata key (right after the 24-byte header).</summary>
    public long MetadataOffset { get; }
    public long TensorInfosOffset { get; }
    public long DataOffset { get; }
    public long FileLength { get; }
    public IReadOnlyDictionary<string, GgufTensorLayout> Tensors { get; }
}

/// <summary>Positions of one tensor's info fields and data.</summary>
/// <param name="InfoOffset">Start of the tensor info (its name length).</param>
/// <param name="DimsOffset">The first u64 dim (ne0).</param>
/// <param name="TypeOffset">The u32 ggml type.</param>
/// <param name="OffsetFieldOffset">The u64 data offset.</param>
/// <param name="DataFileOffset">Absolute offset of the data.</param>
/// <param name="ByteLength">Data size.</param>
public readonly record struct GgufTensorLayout(long InfoOffset, long DimsOffset, long TypeOffset, long OffsetFieldOffset,
                                               long DataFileOffset, long ByteLength);

/// <summary>Writes GGUF v3 files.</summary>
public static class GgufWriter
{
    /// <summary>
    /// Writes <paramref name="path"/>. <c>general.alignment</c> is added when <paramref name="alignment"/>
    /// differs from the default 32. Tensors are laid out in the given order, each padded to the alignment.
    /// </summary>
    public static GgufLayout Write(string path, IEnumerable<KeyValuePair<string, GgufValue>> metadata,
                                   IReadOnlyList<GgufTensorData> tensors, int alignment = GgufFile.DefaultAlignment)
    {
        if (alignment <= 0 || (alignment & (alignment - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(alignment), "alignment must be a power of two");

        var entries = metadata.ToList();
        if (entries.Select(e => e.Key).Distinct(StringComparer.Ordinal).Count() != entries.Count)
            throw new ArgumentException("duplicate metadata key", nameof(metadata));
        int alignIndex = entries.FindIndex(e => e.Key == "general.alignment");
        if (alignIndex >= 0)
        {
            if (!entries[alignIndex].Value.TryGetInt64(out long given) || given != alignment)
                throw new ArgumentException("general.alignment in metadata differs from the alignment argument", nameof(metadata));
        }
        else if (alignment != GgufFile.DefaultAlignment)
        {
            entries.Add(new("general.alignment", GgufValue.UInt32((uint)alignment)));
        }

        var header = new HeaderWriter();
        header.U32(GgufFile.Magic);
        header.U32(3);
        header.U64((ulong)tensors.Count);
        header.U64((ulong)entries.Count);
        long metadataOffset = header.Length;
        foreach (var (key, value) in entries)
        {
            header.String(key);
            header.U32((uint)value.Type);
            WriteValue(header, value);
        }

        long tensorInfosOffset = header.Length;
        var pending = new List<(string Name, long InfoOffset, long DimsOffset, long TypeOffset, long OffsetField, long Relative, long Bytes)>();
        long relative = 0;
        foreach (var t in tensors)
        {
            ValidateTensor(t);
            long info = header.Length;
            header.String(t.Name);
            header.U32((uint)t.Shape.Length);
            long dimsOffset = header.Length;
            for (int d = t.Shape.Length - 1; d >= 0; d--) header.U64((ulong)t.Shape[d]);
            long typeOffset = header.Length;
            header.U32((uint)t.Type);
            long offsetField = header.Length;
            header.U64((ulong)relative);
            pending.Add((t.Name, info, dimsOffset, typeOffset, offsetField, relative, t.ByteLength));
            relative = GgufFile.AlignUp(relative + t.ByteLength, alignment);
        }
        long dataOffset = GgufFile.AlignUp(header.Length, alignment);

        using (var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            header.CopyTo(file);
            Pad(file, dataOffset - header.Length);
            var counter = new CountingStream(file);
            for (int i = 0; i < tensors.Count; i++)
            {
                long before = counter.Count;
                tensors[i].WriteData(counter);
                long written = counter.Count - before;
                if (written != tensors[i].ByteLength)
                    throw new InvalidOperationException($"tensor {tensors[i].Name} wrote {written} bytes, declared {tensors[i].ByteLength}");
                Pad(counter, GgufFile.AlignUp(written, alignment) - written); // llama.cpp pads the last one too
            }
        }

        var layouts = new Dictionary<string, GgufTensorLayout>(StringComparer.Ordinal);
        foreach (var p in pending) // duplicate names (only useful for crafting bad files): the first wins
            layouts.TryAdd(p.Name, new GgufTensorLayout(p.InfoOffset, p.DimsOffset, p.TypeOffset, p.OffsetField, dataOffset + p.Relative, p.Bytes));
        return new GgufLayout(metadataOffset, tensorInfosOffset, dataOffset, new FileInfo(path).Length, layouts);
    }

    private static void ValidateTensor(GgufTensorData t)
    {
        if (t.Shape.Length is 0 or > 4) throw new ArgumentException($"tensor {t.Name}: 1 to 4 dims required");
        if (t.Shape.Any(d => d <= 0)) throw new ArgumentException($"tensor {t.Name}: dims must be positive");
        if (GgmlTypeInfo.TryGetBlockLayout(t.Type, out int blockElements, out int blockBytes))
        {
            long elements = t.Shape.Aggregate(1L, (a, d) => checked(a * d));
            long expected = elements / blockElements * blockBytes;
            if (t.Shape[^1] % blockElements != 0 || expected != t.ByteLength)
                throw new ArgumentException($"tensor {t.Name}: {t.ByteLength} bytes do not match [{string.Join(", ", t.Shape)}] {t.Type} ({expected} bytes)");
        }
    }

    private static void WriteValue(HeaderWriter w, GgufValue value)
    {
        switch (value.Type)
        {
            case GgufValueType.Array:
                WriteArray(w, value);
                break;
            case GgufValueType.String:
                w.String((string)value.Value);
                break;
            default:
                WriteScalar(w, value.Value);
                break;
        }
    }

    private static void WriteScalar(HeaderWriter w, object v)
    {
        switch (v)
        {
            case byte b: w.Bytes([b]); break;
            case sbyte sb: w.Bytes([(byte)sb]); break;
            case bool flag: w.Bytes([(byte)(flag ? 1 : 0)]); break;
            case ushort us: w.U16(us); break;
            case short s: w.U16((ushort)s); break;
            case uint ui: w.U32(ui); break;
            case int i: w.U32((uint)i); break;
            case float f: w.U32(BitConverter.SingleToUInt32Bits(f)); break;
            case ulong ul: w.U64(ul); break;
            case long l: w.U64((ulong)l); break;
            case double d: w.U64(BitConverter.DoubleToUInt64Bits(d)); break;
            default: throw new ArgumentException($"cannot write metadata value of CLR type {v.GetType().Name}");
        }
    }

    private static void WriteArray(HeaderWriter w, GgufValue value)
    {
        var array = (Array)value.Value;
        w.U32((uint)value.ElementType);
        w.U64((ulong)array.LongLength);
        switch (array)
        {
            case string[] strings:
                foreach (var s in strings) w.String(s);
                break;
            case GgufValue[] nested:
                foreach (var v in nested)
                {
                    if (v.Type != GgufValueType.Array) throw new ArgumentException("nested array elements must be arrays");
                    WriteArray(w, v);
                }
                break;
            case bool[] flags:
                foreach (bool f in flags) w.Bytes([(byte)(f ? 1 : 0)]);
                break;
            case byte[] bytes: w.Bytes(bytes); break;
            case sbyte[] a: w.Bytes(MemoryMarshal.AsBytes(a.AsSpan())); break;
            case ushort[] a: w.Bytes(MemoryMarshal.AsBytes(a.AsSpan())); break;
            case short[] a: w.Bytes(MemoryMarshal.AsBytes(a.AsSpan())); break;
            case uint[] a: w.Bytes(MemoryMarshal.AsBytes(a.AsSpan())); break;
            case int[] a: w.Bytes(MemoryMarshal.AsBytes(a.AsSpan())); break;
            case float[] a: w.Bytes(MemoryMarshal.AsBytes(a.AsSpan())); break;
            case ulong[] a: w.Bytes(MemoryMarshal.AsBytes(a.AsSpan())); break;
            case long[] a: w.Bytes(MemoryMarshal.AsBytes(a.AsSpan())); break;
            case double[] a: w.Bytes(MemoryMarshal.AsBytes(a.AsSpan())); break;
            default: throw new ArgumentException($"cannot write array of CLR type {array.GetType().Name}");
        }
    }

    private static void Pad(Stream s, long count)
    {
        Span<byte> zeros = stackalloc byte[64];
        zeros.Clear();
        while (count > 0)
        {
            int n = (int)Math.Min(count, zeros.Length);
            s.Write(zeros[..n]);
            count -= n;
        }
    }

    /// <summary>Little-endian header bytes built in memory (the header is small next to the data).</summary>
    private sealed class HeaderWriter
    {
        private readonly MemoryStream _buffer = new();
        public long Length => _buffer.Length;
        public void Bytes(ReadOnlySpan<byte> b) => _buffer.Write(b);

        public void U16(ushort v)
        {
            Span<byte> b = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16LittleEndian(b, v);
            _buffer.Write(b);
        }

        public void U32(uint v)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(b, v);
            _buffer.Write(b);
        }

        public void U64(ulong v)
        {
            Span<byte> b = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(b, v);
            _buffer.Write(b);
        }

        public void String(string s)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(s);
            U64((ulong)utf8.Length);
            _buffer.Write(utf8);
        }

        public void CopyTo(Stream s)
        {
            _buffer.Position = 0;
            _buffer.CopyTo(s);
        }
    }

    /// <summary>Counts what tensor producers write so a wrong declared size is caught.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long Count { get; private set; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            inner.Write(buffer, offset, count);
            Count += count;
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            Count += buffer.Length;
        }

        public override void WriteByte(byte value)
        {
            inner.WriteByte(value);
            Count++;
        }
    }
}
