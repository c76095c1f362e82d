// TextTokenizer.cs: the runtime's tokenizer. Encoding wraps Microsoft.ML.Tokenizers' LlamaTokenizer
// (SentencePiece BPE with byte fallback); decoding runs our own piece decoder, the same one the
// streaming IncrementalDecoder uses, so streamed text always concatenates to Decode's output.
using Microsoft.ML.Tokenizers;
using SharpInfer.Models;

namespace SharpInfer.Tokenization;

/// <summary>A SentencePiece (Llama-style) tokenizer built from tokenizer.model or GGUF vocab metadata.</summary>
public sealed class TextTokenizer
{
    private readonly LlamaTokenizer _inner;
    private readonly SentencePieceModel _model;
    private readonly SentencePiece[] _pieces; // the model's pieces plus tokens added on top of it
    private readonly byte[] _byteValue;       // byte value of each Byte piece (index = id), unused otherwise
    private readonly SpecialTokenMatcher _specialMatcher;
    private readonly int[] _eosIds;

    private TextTokenizer(LlamaTokenizer inner, SentencePieceModel model, SentencePiece[] pieces, byte[] byteValue,
                          int[] eosIds, bool addBosToken, bool addEosToken, string source)
    {
        _inner = inner;
        _model = model;
        _pieces = pieces;
        _byteValue = byteValue;
        _eosIds = eosIds;
        AddBosToken = addBosToken;
        AddEosToken = addEosToken;
        Source = source;
        _specialMatcher = new SpecialTokenMatcher(pieces);
    }

    /// <summary>Loads a SentencePiece BPE <c>tokenizer.model</c> file.</summary>
    public static TextTokenizer FromSentencePieceFile(string tokenizerModelPath)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(tokenizerModelPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException(tokenizerModelPath, $"cannot read tokenizer: {e.Message}", e);
        }
        var model = SentencePieceModel.Parse(bytes, tokenizerModelPath);
        return Create(model, bytes, tokenizerModelPath, new TokenizerOptions());
    }

    /// <summary>Id of the beginning-of-sequence token.</summary>
    public int BosId => _model.BosId;

    /// <summary>The tokenizer's own end-of-sequence id (see <see cref="EosIds"/> for all stop ids).</summary>
    public int EosId => _model.EosId;

    public int UnkId => _model.UnkId;

    /// <summary>Number of token ids this tokenizer knows (pieces plus added tokens).</summary>
    public int VocabSize => _pieces.Length;

    /// <summary>Every id that ends a sequence: the model's EOS plus any the checkpoint lists (EOT, EOM...).</summary>
    public IReadOnlyList<int> EosIds => _eosIds;

    /// <summary>Whether the checkpoint asks for BOS to be prepended (informational; Encode's argument decides).</summary>
    public bool AddBosToken { get; }

    /// <summary>Whether the checkpoint asks for EOS to be appended (informational).</summary>
    public bool AddEosToken { get; }

    /// <summary>The file the vocabulary came from.</summary>
    public string Source { get; }

    /// <summary>The wrapped Microsoft.ML.Tokenizers instance (encoding only; special-token parsing is ours).</summary>
    public Tokenizer Inner => _inner;

    internal SentencePieceModel Model => _model;

    /// <summary>
    /// Encodes <paramref name="text"/>; with <paramref name="addBos"/> the result starts with BOS
    /// (also for empty text). Text that looks like a special token ("&lt;s&gt;") is encoded literally.
    /// </summary>
    public int[] Encode(string text, bool addBos = true) => Encode(text, addBos, parseSpecial: false);

    /// <summary>
    /// Encodes <paramref name="text"/>. With <paramref name="parseSpecial"/>, occurrences of control and
    /// user-defined token texts (e.g. "&lt;s&gt;", "[INST]" in a rendered chat template) become their ids,
    /// and each plain segment after one is encoded with its own dummy-prefix space, as llama.cpp does.
    /// </summary>
    public int[] Encode(string text, bool addBos, bool parseSpecial)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 2);
        if (addBos) ids.Add(BosId);
        if (!parseSpecial || _specialMatcher.IsEmpty)
        {
            EncodePlain(text, ids);
            return ids.ToArray();
        }
        int start = 0;
        foreach (var (offset, length, id) in _specialMatcher.FindAll(text))
        {
            if (offset > start) EncodePlain(text.Substring(start, offset - start), ids);
            ids.Add(id);
            start = offset + length;
        }
        if (start < text.Length) EncodePlain(text[start..], ids);
        return ids.ToArray();
    }

    private void EncodePlain(string text, List<int> ids)
    {
        if (text.Length == 0) return;
        ids.AddRange(_inner.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false));
    }

    /// <summary>
    /// Decodes ids to text: byte tokens are joined into UTF-8, the first piece's dummy-prefix space is
    /// dropped, and control/unknown tokens are skipped unless <paramref name="skipSpecial"/> is false.
    /// Ids outside the vocabulary decode to nothing.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecial = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var decoder = new PieceDecoder(this, skipSpecial);
        var sb = new System.Text.StringBuilder();
        foreach (int id in ids) decoder.Push(id, sb);
        decoder.Flush(sb);
        return sb.ToString();
    }

    /// <summary>A streaming decoder whose deltas concatenate to <see cref="Decode"/>'s result.</summary>
    public IncrementalDecoder CreateIncrementalDecoder(bool skipSpecial = true) => new(this, skipSpecial);

    /// <summary>Control and unknown tokens (BOS, EOS, &lt;unk&gt;, chat control tokens).</summary>
    public bool IsSpecial(int id) =>
        (uint)id < (uint)_pieces.Length && _pieces[id].Type is PieceType.Control or PieceType.Unknown;

    /// <summary>The raw piece text of <paramref name="id"/> ("▁Once", "&lt;0x0A&gt;"), or null if out of range.</summary>
    public string? IdToPiece(int id) => (uint)id < (uint)_pieces.Length ? _pieces[id].Piece : null;

    /// <summary>The id of an exact piece, or null.</summary>
    public int? PieceToId(string piece) => _specialMatcher.TryGetId(piece, out int id) ? id
        : _inner.Vocabulary.TryGetValue(piece, out int v) ? v : null;

    // ---- used by PieceDecoder ---------------------------------------------------------------

    internal int PieceCount => _pieces.Length;
    internal ref readonly SentencePiece PieceAt(int id) => ref _pieces[id];
    internal byte ByteValue(int id) => _byteValue[id];
    internal bool DropsDummyPrefix => _model.AddDummyPrefix;
    internal bool EscapesWhitespace => _model.EscapeWhitespaces;

    // ---- construction -----------------------------------------------------------------------

    internal sealed class TokenizerOptions
    {
        public bool AddBosToken { get; init; } = true;
        public bool AddEosToken { get; init; }

        /// <summary>Extra stop ids beyond the model's EOS.</summary>
        public IReadOnlyList<int> ExtraEosIds { get; init; } = [];

        /// <summary>Tokens a Hugging Face tokenizer_config adds: id, content, special.</summary>
        public IReadOnlyList<(int Id, string Content, bool Special)> AddedTokens { get; init; } = [];
    }

    /// <summary>
    /// Builds a tokenizer. <paramref name="protoBytes"/> is the original tokenizer.model when there is
    /// one (fed to Microsoft.ML.Tokenizers as is); otherwise the model is serialized.
    /// </summary>
    internal static TextTokenizer Create(SentencePieceModel model, byte[]? protoBytes, string source, TokenizerOptions options)
    {
        ModelFormatException Fail(string detail) => new(source, detail);

        if (model.ModelType != SentencePieceModel.ModelTypeBpe)
            throw Fail($"SentencePiece model type {(model.ModelType == SentencePieceModel.ModelTypeUnigram ? "unigram" : model.ModelType.ToString())} is not supported (this build reads BPE vocabularies)");
        if (model.TreatWhitespaceAsSuffix)
            throw Fail("SentencePiece treat_whitespace_as_suffix is not supported");
        int count = model.Pieces.Count;
        if (model.UnkId < 0 || model.UnkId >= count) throw Fail($"unknown-token id {model.UnkId} is outside the vocabulary of {count}");
        if (model.BosId < 0 || model.BosId >= count) throw Fail($"BOS id {model.BosId} is outside the vocabulary of {count}");
        if (model.EosId <= 0 || model.EosId >= count) throw Fail($"EOS id {model.EosId} is outside the vocabulary of {count} (or 0)");

        var seen = new Dictionary<string, int>(count, StringComparer.Ordinal);
        var byteValue = new byte[count];
        bool hasByteZero = false;
        for (int i = 0; i < count; i++)
        {
            var p = model.Pieces[i];
            if (!seen.TryAdd(p.Piece, i))
                throw Fail($"duplicate vocabulary piece '{p.Piece}' at ids {seen[p.Piece]} and {i}");
            if (p.Type == PieceType.Byte)
            {
                if (!SentencePieceModel.TryParseBytePiece(p.Piece, out byteValue[i]))
                    throw Fail($"token {i} '{p.Piece}' is typed BYTE but is not of the form <0xHH>");
                hasByteZero |= byteValue[i] == 0;
            }
        }
        if (model.ByteFallback && !hasByteZero)
            throw Fail("byte fallback is on but the vocabulary has no <0x00> token");

        var pieces = new List<SentencePiece>(model.Pieces);
        foreach (var (id, content, special) in options.AddedTokens.OrderBy(t => t.Id))
        {
            var type = special ? PieceType.Control : PieceType.UserDefined;
            if (id < pieces.Count)
            {
                // A token the model already has: adopt the config's view of whether it is special.
                if (pieces[id].Piece == content && special && pieces[id].Type == PieceType.Normal)
                    pieces[id] = pieces[id] with { Type = PieceType.Control };
                continue;
            }
            if (id != pieces.Count)
                throw Fail($"added token '{content}' has id {id}, but the vocabulary ends at {pieces.Count} (ids must be contiguous)");
            pieces.Add(new SentencePiece(content, 0, type));
        }
        Array.Resize(ref byteValue, pieces.Count);

        byte[] proto = protoBytes ?? model.Serialize();
        LlamaTokenizer inner;
        try
        {
            inner = LlamaTokenizer.Create(new MemoryStream(proto, writable: false), addBeginOfSentence: true, addEndOfSentence: false);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or IOException
                                    or Google.Protobuf.InvalidProtocolBufferException)
        {
            throw new ModelFormatException(source, $"Microsoft.ML.Tokenizers rejected the vocabulary: {e.Message}", e);
        }

        var eos = new List<int> { model.EosId };
        foreach (int id in options.ExtraEosIds)
        {
            if (id < 0 || id >= pieces.Count) throw Fail($"stop token id {id} is outside the vocabulary of {pieces.Count}");
            if (!eos.Contains(id)) eos.Add(id);
        }
        return new TextTokenizer(inner, model, pieces.ToArray(), byteValue, eos.ToArray(), options.AddBosToken, options.AddEosToken, source);
    }

    /// <summary>Longest-first matching of control / user-defined token texts inside a string.</summary>
    private sealed class SpecialTokenMatcher
    {
        private readonly Dictionary<string, int> _byText = new(StringComparer.Ordinal);
        private readonly Dictionary<char, string[]> _byFirstChar = new();

        public SpecialTokenMatcher(SentencePiece[] pieces)
        {
            for (int i = 0; i < pieces.Length; i++)
            {
                var p = pieces[i];
                if (p.Type is PieceType.Control or PieceType.UserDefined && p.Piece.Length > 0)
                    _byText.TryAdd(p.Piece, i);
            }
            foreach (var group in _byText.Keys.GroupBy(k => k[0]))
                _byFirstChar[group.Key] = group.OrderByDescending(k => k.Length).ToArray();
        }

        public bool IsEmpty => _byText.Count == 0;

        public bool TryGetId(string text, out int id) => _byText.TryGetValue(text, out id);

        public IEnumerable<(int Offset, int Length, int Id)> FindAll(string text)
        {
            for (int i = 0; i < text.Length; i++)
            {
                if (!_byFirstChar.TryGetValue(text[i], out var candidates)) continue;
                foreach (string candidate in candidates)
                {
                    if (string.CompareOrdinal(text, i, candidate, 0, candidate.Length) == 0)
                    {
                        yield return (i, candidate.Length, _byText[candidate]);
                        i += candidate.Length - 1;
                        break;
                    }
                }
            }
        }
    }
}
