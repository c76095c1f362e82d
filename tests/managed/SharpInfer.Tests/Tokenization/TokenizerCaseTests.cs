// TokenizerCaseTests.cs: every reference/tokenizer_cases.json string encodes to the listed ids and
// decodes back, for the tokenizer from hf/tokenizer.model and from each GGUF's vocab metadata;
// our decoder agrees with Microsoft.ML.Tokenizers' Decode; special-token parsing and the built-in
// vocabulary behave.
using System.Text.Json;
using SharpInfer.Models;
using SharpInfer.Tests.Models;
using SharpInfer.Tokenization;

namespace SharpInfer.Tests.Tokenization;

public sealed class TokenizerCaseTests
{
    internal static List<TokenizerCase> LoadCases()
    {
        string path = Path.Combine(TestModels.Stories260KDir, "reference", "tokenizer_cases.json");
        var file = JsonSerializer.Deserialize(File.ReadAllText(path), TestJsonContext.Default.TokenizerCaseFile)!;
        Assert.Equal(19, file.Cases.Count);
        return file.Cases;
    }

    /// <summary>The tokenizer of one stories260K form.</summary>
    internal static TextTokenizer LoadTokenizer(string source) => source switch
    {
        "hf-tokenizer.model" => TextTokenizer.FromSentencePieceFile(Path.Combine(TestModels.Stories260KHf, "tokenizer.model")),
        "hf" => LoadCheckpointTokenizer(TestModels.Stories260KHf),
        "gguf" => LoadCheckpointTokenizer(TestModels.Stories260KGguf),
        "upstream" => LoadCheckpointTokenizer(TestModels.Stories260KUpstreamGguf),
        _ => throw new ArgumentException(source),
    };

    private static TextTokenizer LoadCheckpointTokenizer(string path)
    {
        using var m = ModelLoader.Load(path);
        return m.Tokenizer; // the tokenizer owns no file mapping, so it outlives the checkpoint
    }

    public static TheoryData<string> Sources => ["hf-tokenizer.model", "hf", "gguf", "upstream"];

    [SkippableTheory]
    [MemberData(nameof(Sources))]
    public void EveryCase_EncodesToReferenceIds_AndDecodesBack(string source)
    {
        TestModels.RequireStories260K();
        var tokenizer = LoadTokenizer(source);
        var failures = new List<string>();
        foreach (var c in LoadCases())
        {
            int[] ids = tokenizer.Encode(c.Text);
            if (!ids.SequenceEqual(c.IdsWithBos))
                failures.Add($"{c}: encoded [{string.Join(",", ids)}], expected [{string.Join(",", c.IdsWithBos)}]");
            string text = tokenizer.Decode(c.IdsWithBos);
            if (text != c.Text) failures.Add($"{c}: decoded {JsonSerializer.Serialize(text, TestJsonContext.Default.String)}");
            int[] withoutBos = tokenizer.Encode(c.Text, addBos: false);
            if (!withoutBos.SequenceEqual(c.IdsWithBos.Skip(1)))
                failures.Add($"{c}: without BOS encoded [{string.Join(",", withoutBos)}]");
            for (int i = 0; i < c.Pieces.Length; i++)
                if (tokenizer.IdToPiece(c.IdsWithBos[i]) != c.Pieces[i])
                    failures.Add($"{c}: id {c.IdsWithBos[i]} is piece '{tokenizer.IdToPiece(c.IdsWithBos[i])}', expected '{c.Pieces[i]}'");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [SkippableTheory]
    [MemberData(nameof(Sources))]
    public void SpecialIds_AreReported(string source)
    {
        TestModels.RequireStories260K();
        var t = LoadTokenizer(source);
        Assert.True(t.IsSpecial(0));
        Assert.True(t.IsSpecial(1));
        Assert.True(t.IsSpecial(2));
        Assert.False(t.IsSpecial(3));   // <0x00>
        Assert.False(t.IsSpecial(403)); // ▁Once
        Assert.False(t.IsSpecial(-1));
        Assert.False(t.IsSpecial(512));
        Assert.Equal("<s>Once upon a time</s>", t.Decode([1, 403, 407, 261, 378, 2], skipSpecial: false));
        Assert.Equal("Once upon a time", t.Decode([1, 403, 407, 261, 378, 2]));
    }

    [SkippableFact]
    public void Decode_MatchesMicrosoftMLTokenizers_OnRandomSequences()
    {
        TestModels.RequireStories260K();
        var t = LoadTokenizer("hf-tokenizer.model");
        var library = (Microsoft.ML.Tokenizers.LlamaTokenizer)t.Inner;
        var random = new Random(1234);
        for (int trial = 0; trial < 3000; trial++)
        {
            int length = random.Next(0, 12);
            // Bias towards byte tokens (3..258) so partial and invalid UTF-8 runs are common.
            int[] ids = Enumerable.Range(0, length).Select(_ => random.Next(4) switch
            {
                0 => random.Next(0, 3),
                1 or 2 => random.Next(3, 259),
                _ => random.Next(259, 512),
            }).ToArray();
            foreach (bool skip in new[] { true, false })
            {
                string expected = library.Decode(ids, considerSpecialTokens: !skip);
                Assert.True(expected == t.Decode(ids, skip), $"ids [{string.Join(",", ids)}] skipSpecial={skip}");
            }
        }
    }

    [SkippableFact]
    public void EmptyText_IsJustBos()
    {
        TestModels.RequireStories260K();
        var t = LoadTokenizer("gguf");
        Assert.Equal([1], t.Encode(""));
        Assert.Empty(t.Encode("", addBos: false));
        Assert.Equal("", t.Decode([]));
    }

    [SkippableFact]
    public void ParseSpecial_TurnsControlTextIntoIds()
    {
        TestModels.RequireStories260K();
        var t = LoadTokenizer("hf");
        // Literal by default, as the reference cases require...
        Assert.Equal([1, 410, 504, 419, 505], t.Encode("<s>"));
        // ...and a control token when asked, with each following segment getting its own dummy prefix.
        int[] ids = t.Encode("<s>Once upon</s>a time", addBos: false, parseSpecial: true);
        int[] expected = [1, .. t.Encode("Once upon", addBos: false), 2, .. t.Encode("a time", addBos: false)];
        Assert.Equal(expected, ids);
        Assert.Equal(1, t.PieceToId("<s>"));
        Assert.Equal(403, t.PieceToId("\u2581Once"));
        Assert.Null(t.PieceToId("no such piece"));
    }

    [Fact]
    public void BuiltInVocabulary_RoundTripsAnyText()
    {
        using var dir = new TempDirectory();
        string path = dir.File("tiny.gguf");
        SyntheticModel.Write(path, SyntheticModel.Tiny with { VocabSize = 2000 }, TensorDType.F32, seed: 1);
        using var m = ModelLoader.Load(path);
        var t = m.Tokenizer;
        Assert.Equal(2000, t.VocabSize);
        string[] texts =
        [
            "", "a", " ", "   ", "Hello, world!", " leading and trailing ", "tabs\tand\nnewlines\r\n",
            "Unicode: café, naïve, 日本語, emoji 😀👍🏽!", "ünïcödé", "\u2581literal marker", "<s> and </s>",
        ];
        foreach (string text in texts)
        {
            int[] ids = t.Encode(text);
            Assert.Equal(1, ids[0]);
            Assert.All(ids, id => Assert.InRange(id, 0, 1999));
            string expected = text.Replace('\u2581', ' '); // SentencePiece renders its space marker as a space
            Assert.Equal(expected, t.Decode(ids));
        }
        // Common words merge into multi-character pieces rather than single bytes.
        Assert.True(t.Encode("the cat", addBos: false).Length < "the cat".Length);
    }
}
