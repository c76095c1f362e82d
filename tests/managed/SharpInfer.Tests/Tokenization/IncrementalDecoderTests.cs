// IncrementalDecoderTests.cs: streamed deltas concatenate to Decode, multi-byte characters built
// from byte-fallback tokens appear only when complete, and the dummy-prefix space is dropped once.
using SharpInfer.Models;
using SharpInfer.Tests.Models;
using SharpInfer.Tokenization;

namespace SharpInfer.Tests.Tokenization;

public sealed class IncrementalDecoderTests
{
    [SkippableTheory]
    [MemberData(nameof(TokenizerCaseTests.Sources), MemberType = typeof(TokenizerCaseTests))]
    public void Deltas_ConcatenateToTheCaseText(string source)
    {
        TestModels.RequireStories260K();
        var t = TokenizerCaseTests.LoadTokenizer(source);
        foreach (var c in TokenizerCaseTests.LoadCases())
        {
            var decoder = new IncrementalDecoder(t);
            var deltas = c.IdsWithBos.Select(decoder.Append).ToList();
            deltas.Add(decoder.Flush());
            Assert.Equal(c.Text, string.Concat(deltas));
            Assert.DoesNotContain(deltas, d => d.Contains('\uFFFD'));
            Assert.Equal(t.Decode(c.IdsWithBos), string.Concat(deltas));
        }
    }

    [SkippableFact]
    public void Emoji_AppearsOnlyWhenItsFourBytesAreComplete()
    {
        TestModels.RequireStories260K();
        var t = TokenizerCaseTests.LoadTokenizer("gguf");
        int[] ids = t.Encode("emoji 😀!");
        Assert.Equal([1, 344, 423, 414, 449, 417, 410, 243, 162, 155, 131, 443], ids);
        var decoder = t.CreateIncrementalDecoder();
        string[] deltas = ids.Select(decoder.Append).ToArray();
        Assert.Equal(["", "e", "m", "o", "j", "i", " ", "", "", "", "😀", "!"], deltas);
        Assert.Equal("", decoder.Flush());
    }

    [SkippableFact]
    public void Cjk_AppearsCharacterByCharacter()
    {
        TestModels.RequireStories260K();
        var t = TokenizerCaseTests.LoadTokenizer("hf");
        int[] ids = t.Encode("日本語", addBos: false);
        var decoder = new IncrementalDecoder(t);
        string[] deltas = ids.Select(decoder.Append).ToArray();
        Assert.Equal("日本語", string.Concat(deltas));
        Assert.Equal(["日", "本", "語"], deltas.Where(d => d.Length > 0).ToArray());
    }

    [SkippableFact]
    public void UnfinishedCharacter_FlushesAsReplacement_LikeDecode()
    {
        TestModels.RequireStories260K();
        var t = TokenizerCaseTests.LoadTokenizer("hf");
        int[] ids = [1, 403, 243, 162]; // "Once" + the first two bytes of 😀
        var decoder = new IncrementalDecoder(t);
        string streamed = string.Concat(ids.Select(decoder.Append)) + decoder.Flush();
        Assert.Equal(t.Decode(ids), streamed);
        Assert.Equal("Once\uFFFD", streamed);
    }

    [SkippableFact]
    public void RandomSequences_ConcatenateToDecode()
    {
        TestModels.RequireStories260K();
        var t = TokenizerCaseTests.LoadTokenizer("gguf");
        var random = new Random(99);
        for (int trial = 0; trial < 2000; trial++)
        {
            int[] ids = Enumerable.Range(0, random.Next(0, 16)).Select(_ => random.Next(3) == 0 ? random.Next(0, 259) : random.Next(0, 512)).ToArray();
            foreach (bool skip in new[] { true, false })
            {
                var decoder = new IncrementalDecoder(t, skip);
                string streamed = string.Concat(ids.Select(decoder.Append)) + decoder.Flush();
                Assert.True(t.Decode(ids, skip) == streamed, $"ids [{string.Join(",", ids)}] skipSpecial={skip}");
            }
        }
    }

    [SkippableFact]
    public void PromptThenGeneration_KeepsTheFirstGeneratedSpace()
    {
        TestModels.RequireStories260K();
        var t = TokenizerCaseTests.LoadTokenizer("hf");
        var decoder = new IncrementalDecoder(t);
        foreach (int id in t.Encode("Once upon a time")) decoder.Append(id);
        Assert.Equal(",", decoder.Append(432));
        Assert.Equal(" there", decoder.Append(383));
        decoder.Reset();
        Assert.Equal("there", decoder.Append(383)); // a fresh stream drops the dummy prefix again
    }
}
