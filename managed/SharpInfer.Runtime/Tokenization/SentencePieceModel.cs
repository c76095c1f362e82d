// SentencePieceModel.cs: the parts of a SentencePiece ModelProto this runtime needs (pieces with
// scores and types, trainer and normalizer flags), read from tokenizer.model bytes or built from
// GGUF vocab metadata, and serialized back to protobuf for Microsoft.ML.Tokenizers.
// Field numbers follow sentencepiece_model.proto:
//   ModelProto       { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2; NormalizerSpec normalizer_spec = 3; }
//   SentencePiece    { string piece = 1; float score = 2; Type type = 3 (NORMAL=1 UNKNOWN=2 CONTROL=3 USER_DEFINED=4 UNUSED=5 BYTE=6); }
//   TrainerSpec      { ModelType model_type = 3 (UNIGRAM=1 BPE=2); int32 vocab_size = 4; bool byte_fallback = 35;
//                      int32 unk_id = 40, bos_id = 41, eos_id = 42, pad_id = 43; string unk_piece = 45, bos_piece = 46,
//                      eos_piece = 47, pad_piece = 48; bool treat_whitespace_as_suffix = 24; }
//   NormalizerSpec   { string name = 1; bytes precompiled_charsmap = 2; bool add_dummy_prefix = 3;
//                      bool remove_extra_whitespaces = 4; bool escape_whitespaces = 5; }
using System.Text;
using SharpInfer.Models;

namespace SharpInfer.Tokenization;

/// <summary>SentencePiece piece types (sentencepiece_model.proto; GGUF token_type uses the same numbers).</summary>
internal enum PieceType
{
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

internal readonly record struct SentencePiece(string Piece, float Score, PieceType Type);

internal sealed class SentencePieceModel
{
    public const int ModelTypeUnigram = 1;
    public const int ModelTypeBpe = 2;

    public required List<SentencePiece> Pieces { get; init; }
    public int ModelType { get; init; } = ModelTypeUnigram;
    public bool ByteFallback { get; init; }
    public bool TreatWhitespaceAsSuffix { get; init; }
    public int UnkId { get; init; } = 0;
    public int BosId { get; init; } = 1;
    public int EosId { get; init; } = 2;
    public int PadId { get; init; } = -1;
    public string NormalizerName { get; init; } = "identity";
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; } = true;
    public bool EscapeWhitespaces { get; init; } = true;
    public bool HasPrecompiledCharsmap { get; init; }

    /// <summary>Parses a serialized ModelProto (a tokenizer.model file).</summary>
    public static SentencePieceModel Parse(ReadOnlySpan<byte> proto, string sourcePath)
    {
        var pieces = new List<SentencePiece>();
        int modelType = ModelTypeUnigram, unk = 0, bos = 1, eos = 2, pad = -1;
        bool byteFallback = false, suffix = false, dummyPrefix = true, removeExtra = true, escape = true, charsmap = false;
        string normalizerName = "identity";
        try
        {
            var top = new ProtoReader(proto);
            while (top.Next(out int field, out int wire))
            {
                switch (field)
                {
                    case 1 when wire == ProtoReader.WireLengthDelimited:
                    {
                        var p = new ProtoReader(top.Bytes());
                        string piece = "";
                        float score = 0;
                        var type = PieceType.Normal;
                        while (p.Next(out int f, out int w))
                        {
                            if (f == 1 && w == ProtoReader.WireLengthDelimited) piece = Encoding.UTF8.GetString(p.Bytes());
                            else if (f == 2 && w == ProtoReader.WireFixed32) score = p.Float();
                            else if (f == 3 && w == ProtoReader.WireVarint) type = (PieceType)(int)p.Varint();
                            else p.Skip(w);
                        }
                        pieces.Add(new SentencePiece(piece, score, type));
                        break;
                    }
                    case 2 when wire == ProtoReader.WireLengthDelimited:
                    {
                        var t = new ProtoReader(top.Bytes());
                        while (t.Next(out int f, out int w))
                        {
                            if (w != ProtoReader.WireVarint) { t.Skip(w); continue; }
                            long v = (long)t.Varint();
                            switch (f)
                            {
                                case 3: modelType = (int)v; break;
                                case 24: suffix = v != 0; break;
                                case 35: byteFallback = v != 0; break;
                                case 40: unk = (int)v; break;
                                case 41: bos = (int)v; break;
                                case 42: eos = (int)v; break;
                                case 43: pad = (int)v; break;
                            }
                        }
                        break;
                    }
                    case 3 when wire == ProtoReader.WireLengthDelimited:
                    {
                        var n = new ProtoReader(top.Bytes());
                        while (n.Next(out int f, out int w))
                        {
                            if (f == 1 && w == ProtoReader.WireLengthDelimited) normalizerName = Encoding.UTF8.GetString(n.Bytes());
                            else if (f == 2 && w == ProtoReader.WireLengthDelimited) charsmap = n.Bytes().Length > 0;
                            else if (f == 3 && w == ProtoReader.WireVarint) dummyPrefix = n.Varint() != 0;
                            else if (f == 4 && w == ProtoReader.WireVarint) removeExtra = n.Varint() != 0;
                            else if (f == 5 && w == ProtoReader.WireVarint) escape = n.Varint() != 0;
                            else n.Skip(w);
                        }
                        break;
                    }
                    default:
                        top.Skip(wire);
                        break;
                }
            }
        }
        catch (FormatException e)
        {
            throw new ModelFormatException(sourcePath, $"not a valid SentencePiece model: {e.Message}", e);
        }
        if (pieces.Count == 0) throw new ModelFormatException(sourcePath, "SentencePiece model has no pieces");
        return new SentencePieceModel
        {
            Pieces = pieces, ModelType = modelType, ByteFallback = byteFallback, TreatWhitespaceAsSuffix = suffix,
            UnkId = unk, BosId = bos, EosId = eos, PadId = pad, NormalizerName = normalizerName,
            AddDummyPrefix = dummyPrefix, RemoveExtraWhitespaces = removeExtra, EscapeWhitespaces = escape,
            HasPrecompiledCharsmap = charsmap,
        };
    }

    /// <summary>Serializes to a ModelProto that Microsoft.ML.Tokenizers can load (no precompiled charsmap).</summary>
    public byte[] Serialize()
    {
        var w = new ProtoWriter();
        var piece = new ProtoWriter();
        foreach (var p in Pieces)
        {
            piece.Clear();
            piece.String(1, p.Piece);
            piece.Float(2, p.Score);
            piece.Varint(3, (ulong)(int)p.Type);
            w.Message(1, piece);
        }

        var trainer = new ProtoWriter();
        trainer.Varint(3, (ulong)ModelType);
        trainer.Varint(4, (ulong)Pieces.Count);
        trainer.Varint(24, TreatWhitespaceAsSuffix ? 1UL : 0UL);
        trainer.Varint(35, ByteFallback ? 1UL : 0UL);
        trainer.Int32(40, UnkId);
        trainer.Int32(41, BosId);
        trainer.Int32(42, EosId);
        trainer.Int32(43, PadId);
        if (UnkId >= 0 && UnkId < Pieces.Count) trainer.String(45, Pieces[UnkId].Piece);
        if (BosId >= 0 && BosId < Pieces.Count) trainer.String(46, Pieces[BosId].Piece);
        if (EosId >= 0 && EosId < Pieces.Count) trainer.String(47, Pieces[EosId].Piece);
        w.Message(2, trainer);

        var normalizer = new ProtoWriter();
        normalizer.String(1, NormalizerName);
        normalizer.Varint(3, AddDummyPrefix ? 1UL : 0UL);
        normalizer.Varint(4, RemoveExtraWhitespaces ? 1UL : 0UL);
        normalizer.Varint(5, EscapeWhitespaces ? 1UL : 0UL);
        w.Message(3, normalizer);
        return w.ToArray();
    }

    /// <summary>Parses "&lt;0xAB&gt;" into its byte.</summary>
    public static bool TryParseBytePiece(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>' &&
               byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out value);
    }
}

/// <summary>Minimal protobuf wire-format reader (varint, fixed32, fixed64, length-delimited).</summary>
internal ref struct ProtoReader(ReadOnlySpan<byte> data)
{
    public const int WireVarint = 0, WireFixed64 = 1, WireLengthDelimited = 2, WireFixed32 = 5;

    private readonly ReadOnlySpan<byte> _data = data;
    private int _pos = 0;

    public bool Next(out int field, out int wire)
    {
        if (_pos >= _data.Length)
        {
            field = wire = 0;
            return false;
        }
        ulong key = Varint();
        field = (int)(key >> 3);
        wire = (int)(key & 7);
        if (field == 0) throw new FormatException($"field number 0 at byte {_pos}");
        return true;
    }

    public ulong Varint()
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (_pos >= _data.Length) throw new FormatException("truncated varint");
            byte b = _data[_pos++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
        }
        throw new FormatException("varint longer than 10 bytes");
    }

    public ReadOnlySpan<byte> Bytes()
    {
        ulong length = Varint();
        if (length > (ulong)(_data.Length - _pos)) throw new FormatException($"length {length} at byte {_pos} runs past the end");
        var span = _data.Slice(_pos, (int)length);
        _pos += (int)length;
        return span;
    }

    public float Float()
    {
        if (_data.Length - _pos < 4) throw new FormatException("truncated fixed32");
        float v = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(_data.Slice(_pos, 4));
        _pos += 4;
        return v;
    }

    public void Skip(int wire)
    {
        switch (wire)
        {
            case WireVarint: Varint(); break;
            case WireFixed64: Advance(8); break;
            case WireLengthDelimited: Bytes(); break;
            case WireFixed32: Advance(4); break;
            default: throw new FormatException($"unsupported wire type {wire}");
        }
    }

    private void Advance(int n)
    {
        if (_data.Length - _pos < n) throw new FormatException("truncated field");
        _pos += n;
    }
}

/// <summary>Minimal protobuf wire-format writer.</summary>
internal sealed class ProtoWriter
{
    private readonly MemoryStream _buffer = new();

    public void Clear() => _buffer.SetLength(0);
    public byte[] ToArray() => _buffer.ToArray();

    private void Key(int field, int wire) => RawVarint(((ulong)field << 3) | (uint)wire);

    private void RawVarint(ulong v)
    {
        while (v >= 0x80)
        {
            _buffer.WriteByte((byte)(v | 0x80));
            v >>= 7;
        }
        _buffer.WriteByte((byte)v);
    }

    public void Varint(int field, ulong value)
    {
        Key(field, ProtoReader.WireVarint);
        RawVarint(value);
    }

    /// <summary>int32 fields encode negatives as 10-byte sign-extended varints.</summary>
    public void Int32(int field, int value) => Varint(field, (ulong)(long)value);

    public void Float(int field, float value)
    {
        Key(field, ProtoReader.WireFixed32);
        Span<byte> b = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(b, value);
        _buffer.Write(b);
    }

    public void String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public void Bytes(int field, ReadOnlySpan<byte> value)
    {
        Key(field, ProtoReader.WireLengthDelimited);
        RawVarint((ulong)value.Length);
        _buffer.Write(value);
    }

    public void Message(int field, ProtoWriter message) => Bytes(field, message._buffer.GetBuffer().AsSpan(0, (int)message._buffer.Length));
}
