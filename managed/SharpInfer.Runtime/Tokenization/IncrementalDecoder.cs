// IncrementalDecoder.cs: streaming detokenization. Fed one token id at a time it returns the text
// that became final: byte-fallback tokens are held until they form complete UTF-8 characters, and
// the first piece's dummy-prefix space is dropped, so the deltas concatenate to TextTokenizer.Decode.
using System.Text;

namespace SharpInfer.Tokenization;

/// <summary>
/// Turns a stream of token ids into text deltas. Concatenating every <see cref="Append"/> result and
/// the final <see cref="Flush"/> equals <see cref="TextTokenizer.Decode"/> of all the ids.
/// To continue after a prompt (so the first generated word keeps its leading space), push the
/// prompt ids first and discard their text.
/// </summary>
public sealed class IncrementalDecoder
{
    private readonly PieceDecoder _decoder;
    private readonly StringBuilder _scratch = new();

    public IncrementalDecoder(TextTokenizer tokenizer, bool skipSpecial = true)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _decoder = new PieceDecoder(tokenizer, skipSpecial);
    }

    /// <summary>Adds one token; returns the newly completed text (often empty mid-character).</summary>
    public string Append(int tokenId)
    {
        _scratch.Clear();
        _decoder.Push(tokenId, _scratch);
        return _scratch.ToString();
    }

    /// <summary>Ends the stream: an unfinished UTF-8 sequence becomes U+FFFD, as Decode renders it.</summary>
    public string Flush()
    {
        _scratch.Clear();
        _decoder.Flush(_scratch);
        return _scratch.ToString();
    }

    /// <summary>Starts a new, independent stream.</summary>
    public void Reset() => _decoder.Reset();
}

/// <summary>
/// The SentencePiece decoding state machine shared by Decode and IncrementalDecoder. It renders text
/// exactly as Microsoft.ML.Tokenizers 2.0.1's SentencePiece Decode does for Llama vocabularies:
/// a run of byte tokens is decoded as one UTF-8 sequence (invalid parts become U+FFFD), byte tokens
/// do not count as the first piece, and '▁' becomes ' ' (even when it came from byte tokens). Unlike it, control tokens anywhere in the
/// vocabulary (not only below the byte tokens) are treated as special.
/// </summary>
internal sealed class PieceDecoder
{
    private const char SpaceSymbol = '\u2581';

    private readonly TextTokenizer _tokenizer;
    private readonly bool _skipSpecial;
    private readonly Decoder _utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private readonly char[] _chars = new char[8];
    private bool _prefixHandled;
    private bool _inByteRun;

    public PieceDecoder(TextTokenizer tokenizer, bool skipSpecial)
    {
        _tokenizer = tokenizer;
        _skipSpecial = skipSpecial;
    }

    public void Reset()
    {
        _utf8.Reset();
        _prefixHandled = false;
        _inByteRun = false;
    }

    public void Push(int id, StringBuilder output)
    {
        if ((uint)id >= (uint)_tokenizer.PieceCount)
        {
            Flush(output);
            return;
        }
        ref readonly var piece = ref _tokenizer.PieceAt(id);
        switch (piece.Type)
        {
            case PieceType.Byte:
                _inByteRun = true;
                byte b = _tokenizer.ByteValue(id);
                int n = _utf8.GetChars(new ReadOnlySpan<byte>(in b), _chars, flush: false);
                AppendEscaped(_chars.AsSpan(0, n), output);
                return;
            case PieceType.Control:
            case PieceType.Unknown:
                Flush(output);
                if (!_skipSpecial) AppendEscaped(piece.Piece, output);
                return;
            default:
                Flush(output);
                if (piece.Piece.Length == 0) return;
                ReadOnlySpan<char> text = piece.Piece;
                if (!_prefixHandled && _tokenizer.DropsDummyPrefix && text[0] == (_tokenizer.EscapesWhitespace ? SpaceSymbol : ' '))
                    text = text[1..];
                _prefixHandled = true;
                AppendEscaped(text, output);
                return;
        }
    }

    /// <summary>Ends a byte run: bytes of an unfinished character become U+FFFD.</summary>
    public void Flush(StringBuilder output)
    {
        if (!_inByteRun) return;
        _inByteRun = false;
        int n = _utf8.GetChars(ReadOnlySpan<byte>.Empty, _chars, flush: true);
        AppendEscaped(_chars.AsSpan(0, n), output);
    }

    private void AppendEscaped(ReadOnlySpan<char> text, StringBuilder output)
    {
        if (!_tokenizer.EscapesWhitespace)
        {
            output.Append(text);
            return;
        }
        foreach (char c in text) output.Append(c == SpaceSymbol ? ' ' : c);
    }
}
