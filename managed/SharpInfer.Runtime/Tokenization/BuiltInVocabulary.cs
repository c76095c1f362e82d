// BuiltInVocabulary.cs: a self-contained SentencePiece BPE vocabulary for synthetic models that
// have no real tokenizer: <unk>, <s>, </s>, the 256 byte tokens, then printable pieces and filler
// merges up to the requested size. Byte fallback lets it encode and decode any text.
namespace SharpInfer.Tokenization;

internal static class BuiltInVocabulary
{
    public const int MinimumSize = 3 + 256 + 1;

    public static SentencePieceModel Create(int vocabSize)
    {
        if (vocabSize < MinimumSize)
            throw new ArgumentOutOfRangeException(nameof(vocabSize), $"the built-in vocabulary needs at least {MinimumSize} tokens");
        var pieces = new List<SentencePiece>(vocabSize)
        {
            new("<unk>", 0, PieceType.Unknown),
            new("<s>", 0, PieceType.Control),
            new("</s>", 0, PieceType.Control),
        };
        for (int b = 0; b < 256; b++) pieces.Add(new($"<0x{b:X2}>", 0, PieceType.Byte));

        foreach (string piece in FillerPieces())
        {
            if (pieces.Count == vocabSize) break;
            pieces.Add(new(piece, -(pieces.Count - 259), PieceType.Normal)); // earlier pieces merge first
        }
        for (int i = 0; pieces.Count < vocabSize; i++) pieces.Add(new($"<unused_{i}>", 0, PieceType.Unused));

        return new SentencePieceModel
        {
            Pieces = pieces,
            ModelType = SentencePieceModel.ModelTypeBpe,
            ByteFallback = true,
            UnkId = 0, BosId = 1, EosId = 2, PadId = -1,
            NormalizerName = "identity",
            AddDummyPrefix = true,
            RemoveExtraWhitespaces = false,
            EscapeWhitespaces = true,
        };
    }

    /// <summary>"▁", printable ASCII, "▁x", then letter pairs and triples (each reachable by merging shorter pieces).</summary>
    private static IEnumerable<string> FillerPieces()
    {
        const string space = "\u2581";
        yield return space;
        for (char c = '!'; c <= '~'; c++) yield return c.ToString();
        for (char c = '!'; c <= '~'; c++) yield return space + c;
        const string letters = "abcdefghijklmnopqrstuvwxyz";
        foreach (char a in letters)
            foreach (char b in letters)
                yield return $"{a}{b}";
        foreach (char a in letters)
            foreach (char b in letters)
                yield return $"{space}{a}{b}";
        foreach (char a in letters)
            foreach (char b in letters)
                foreach (char c in letters)
                    yield return $"{a}{b}{c}";
        foreach (char a in letters)
            foreach (char b in letters)
                foreach (char c in letters)
                    yield return $"{space}{a}{b}{c}";
    }
}
