// Stories260KGenerationTests.cs: the end-to-end oracle. For every form of stories260K (our
// GGUF, llama.cpp's GGUF, the HF folder) and every backend, greedy generation must equal the
// reference token for token, and the logits at positions 0-7 must match within 1e-4.
using System.Text.Json;
using SharpInfer.Backends;
using SharpInfer.Engine;
using SharpInfer.Llama;
using SharpInfer.Models;

namespace SharpInfer.Tests.Integration;

public class Stories260KGenerationTests
{
    public static TheoryData<string, BackendKind> Forms()
    {
        var data = new TheoryData<string, BackendKind>();
        foreach (string form in new[] { "gguf/stories260K-f32.gguf", "upstream/stories260K.gguf", "hf" })
            foreach (var backend in new[] { BackendKind.Cpu, BackendKind.Ref })
                data.Add(form, backend);
        return data;
    }

    [SkippableTheory]
    [MemberData(nameof(Forms))]
    public void Greedy64_EqualsReference(string form, BackendKind backendKind)
    {
        string dir = TestModels.RequireStories260K();
        using var reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "reference", "greedy_once_upon_a_time_64.json")));
        int[] promptIds = reference.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int[] expected = reference.RootElement.GetProperty("new_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        string expectedText = reference.RootElement.GetProperty("text").GetString()!;

        using var checkpoint = ModelLoader.Load(Path.Combine(dir, form));
        using var backend = ComputeBackend.Open(backendKind, threads: 2);
        using var model = new LlamaModel(checkpoint, backend);
        var generator = new TextGenerator(model, checkpoint.Tokenizer);

        var result = generator.Generate("Once upon a time", SamplingParams.Greedy with { MaxTokens = 64 });

        Assert.Equal(promptIds, result.PromptTokens);
        Assert.Equal(expected, result.GeneratedTokens);
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal(expectedText, "Once upon a time" + result.Text);
    }

    [SkippableTheory]
    [MemberData(nameof(Forms))]
    public void LogitsAtPositions0To7_MatchReference(string form, BackendKind backendKind)
    {
        string dir = TestModels.RequireStories260K();
        using var meta = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "reference", "logits_once_upon_a_time_pos0-7.json")));
        int[] ids = meta.RootElement.GetProperty("input_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        byte[] raw = File.ReadAllBytes(Path.Combine(dir, "reference", "logits_once_upon_a_time_pos0-7.f32"));
        float[] expected = new float[raw.Length / 4];
        Buffer.BlockCopy(raw, 0, expected, 0, raw.Length);

        using var checkpoint = ModelLoader.Load(Path.Combine(dir, form));
        using var backend = ComputeBackend.Open(backendKind, threads: 2);
        using var model = new LlamaModel(checkpoint, backend);
        using var cache = model.CreateCache();
        float[] logits = new float[ids.Length * model.VocabSize];
        model.Forward(ids, cache, logits, allPositions: true);

        Assert.Equal(expected.Length, logits.Length);
        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < logits.Length; i++)
        {
            double diff = Math.Abs(logits[i] - expected[i]);
            if (!(diff <= worst)) { worst = diff; worstAt = i; }
        }
        Assert.True(worst <= 1e-4, $"max |logit - reference| = {worst:E3} at position {worstAt / model.VocabSize}, token {worstAt % model.VocabSize}");
    }

    [SkippableFact]
    public void Prefill_InChunks_EqualsOneShotPrefill()
    {
        string dir = TestModels.RequireStories260K();
        using var checkpoint = ModelLoader.Load(Path.Combine(dir, "gguf", "stories260K-f32.gguf"));
        using var backend = ComputeBackend.Open(BackendKind.Cpu, threads: 2);
        using var whole = new LlamaModel(checkpoint, backend);
        using var chunked = new LlamaModel(checkpoint, backend, maxBatch: 3);
        int[] ids = checkpoint.Tokenizer.Encode("Once upon a time, there was a little girl named Lily.");
        float[] a = new float[ids.Length * whole.VocabSize], b = new float[a.Length];
        using (var cache = whole.CreateCache()) whole.Forward(ids, cache, a, allPositions: true);
        using (var cache = chunked.CreateCache()) chunked.Forward(ids, cache, b, allPositions: true);
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-5f, $"logit {i}: {a[i]} vs {b[i]}");
    }

    [SkippableFact]
    public void PromptLongerThanContext_IsAClearError()
    {
        string dir = TestModels.RequireStories260K();
        using var checkpoint = ModelLoader.Load(Path.Combine(dir, "gguf", "stories260K-f32.gguf"));
        using var backend = ComputeBackend.Open(BackendKind.Cpu, threads: 1);
        using var model = new LlamaModel(checkpoint, backend);
        var generator = new TextGenerator(model, checkpoint.Tokenizer);
        var prompt = Enumerable.Repeat(400, checkpoint.Config.MaxContext + 1).ToArray();
        var e = Assert.Throws<ContextOverflowException>(() => generator.Generate(prompt, SamplingParams.Greedy));
        Assert.Contains("context", e.Message);
    }

    [SkippableFact]
    public void SeededSampling_Repeats_AndStopStringsCut()
    {
        string dir = TestModels.RequireStories260K();
        using var checkpoint = ModelLoader.Load(Path.Combine(dir, "gguf", "stories260K-f32.gguf"));
        using var backend = ComputeBackend.Open(BackendKind.Cpu, threads: 2);
        using var model = new LlamaModel(checkpoint, backend);
        var generator = new TextGenerator(model, checkpoint.Tokenizer);
        var sampled = new SamplingParams { Temperature = 0.9f, TopK = 40, TopP = 0.95f, MinP = 0.02f, RepetitionPenalty = 1.1f, Seed = 42, MaxTokens = 48 };

        var first = generator.Generate("Once upon a time", sampled);
        var second = generator.Generate("Once upon a time", sampled);
        Assert.Equal(first.GeneratedTokens, second.GeneratedTokens);
        string promptText = checkpoint.Tokenizer.Decode(first.PromptTokens);
        Assert.Equal(promptText + first.Text, checkpoint.Tokenizer.Decode([.. first.PromptTokens, .. first.GeneratedTokens]));

        // A continuation that starts a new word keeps its space: "there" + " was".
        var spaced = generator.Generate("Once upon a time, there", SamplingParams.Greedy with { MaxTokens = 1 });
        Assert.Equal(" was", spaced.Text);

        var stopped = generator.Generate("Once upon a time", SamplingParams.Greedy with { StopStrings = ["Lily"], MaxTokens = 64 });
        Assert.Equal(FinishReason.StopString, stopped.FinishReason);
        Assert.Equal(", there was a little girl named ", stopped.Text);
    }
}
