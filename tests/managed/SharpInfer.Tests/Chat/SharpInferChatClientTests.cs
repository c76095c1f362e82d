// SharpInferChatClientTests.cs: the IChatClient over the engine: template choice and the clear
// error without one, ChatOptions mapping, streaming vs non-streaming, finish reasons and usage
// with cached input tokens; on the fake model and on stories260K with an explicit ChatML template.
using Microsoft.Extensions.AI;
using SharpInfer.Backends;
using SharpInfer.Chat;
using SharpInfer.Engine;
using SharpInfer.Llama;
using SharpInfer.Models;
using SharpInfer.Tests.Engine;

namespace SharpInfer.Tests.Chat;

public class SharpInferChatClientTests
{
    private static InferenceEngine FakeEngine() => new(new FakePagedModel(numBlocks: 128, maxContext: 400), FakePagedModel.Tokenizer());

    private static readonly ChatMessage[] Conversation =
    [
        new(ChatRole.System, "Be brief."),
        new(ChatRole.User, "Hi"),
    ];

    [Fact]
    public void AModelWithoutATemplate_NeedsOneFromTheCaller()
    {
        using var engine = FakeEngine();
        var e = Assert.Throws<InvalidOperationException>(() => new SharpInferChatClient(engine, modelChatTemplate: null));
        Assert.Contains("no chat template", e.Message);
        Assert.Contains("ChatTemplate", e.Message);

        using var withOption = new SharpInferChatClient(engine, modelChatTemplate: null, new SharpInferChatClientOptions { ChatTemplate = ChatTemplates.ChatML });
        using var fromModel = new SharpInferChatClient(engine, ChatTemplates.Zephyr);
        using var overridden = new SharpInferChatClient(engine, ChatTemplates.Zephyr, new SharpInferChatClientOptions { ChatTemplate = ChatTemplates.ChatML });
        Assert.StartsWith("<|im_start|>system\nBe brief.<|im_end|>", withOption.RenderPrompt(Conversation));
        Assert.StartsWith("<|system|>\nBe brief.</s>", fromModel.RenderPrompt(Conversation));
        Assert.StartsWith("<|im_start|>", overridden.RenderPrompt(Conversation));
    }

    [Fact]
    public void ChatOptions_MapOntoSamplingParams()
    {
        using var engine = FakeEngine();
        using var client = new SharpInferChatClient(engine, ChatTemplates.ChatML);
        var options = new ChatOptions
        {
            Temperature = 0.7f, TopP = 0.9f, TopK = 20, MaxOutputTokens = 33, StopSequences = ["END"], Seed = -1,
            FrequencyPenalty = 0.25f, PresencePenalty = -0.5f,
            AdditionalProperties = new AdditionalPropertiesDictionary { ["min_p"] = 0.05, ["repetition_penalty"] = 1.1f },
        };
        var p = client.ToSamplingParams(options, promptTokens: 10);
        Assert.Equal((0.7f, 0.9f, 20, 33, ulong.MaxValue, 0.25f, -0.5f, 0.05f, 1.1f),
            (p.Temperature, p.TopP, p.TopK, p.MaxTokens, p.Seed, p.FrequencyPenalty, p.PresencePenalty, p.MinP, p.RepetitionPenalty));
        Assert.Equal(new[] { "END" }, p.StopStrings);

        // Without MaxOutputTokens the default is capped to what fits in the context.
        Assert.Equal(256, client.ToSamplingParams(new ChatOptions(), 10).MaxTokens);
        Assert.Equal(50, client.ToSamplingParams(null, 350).MaxTokens);

        Assert.Throws<NotSupportedException>(() => client.ToSamplingParams(new ChatOptions { Tools = [AIFunctionFactory.Create(() => 1, "f")] }, 1));
    }

    [Fact]
    public async Task Streaming_AndNonStreaming_Agree_AndReportUsage()
    {
        using var engine = FakeEngine();
        using var client = new SharpInferChatClient(engine, ChatTemplates.ChatML, new SharpInferChatClientOptions { ModelId = "fake" });
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 12 };
        int promptLength = client.EncodePrompt(Conversation, options).Length;

        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(Conversation, options)) updates.Add(u);
        Assert.True(updates.Count >= 2);
        Assert.All(updates, u => Assert.Equal(ChatRole.Assistant, u.Role));
        Assert.All(updates.Take(updates.Count - 1), u => Assert.Null(u.FinishReason));
        var last = updates[^1];
        Assert.Equal(ChatFinishReason.Length, last.FinishReason);
        var usage = Assert.Single(last.Contents.OfType<UsageContent>()).Details;
        Assert.Equal((promptLength, 12L, promptLength + 12L), (usage.InputTokenCount, usage.OutputTokenCount, usage.TotalTokenCount));
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());

        var response = await client.GetResponseAsync(Conversation, options);
        Assert.Equal(string.Concat(updates.Select(u => u.Text)), response.Text);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal("fake", response.ModelId);
        Assert.Equal(12, response.Usage!.OutputTokenCount);
        // The same conversation again: its full blocks come from the prefix cache.
        Assert.True(response.Usage.CachedInputTokenCount > 0);

        Assert.Same(engine, client.GetService<InferenceEngine>());
        Assert.Equal("fake", client.GetService<ChatClientMetadata>()!.DefaultModelId);
        Assert.Same(client, client.GetService<IChatClient>());
    }

    [Fact]
    public async Task InvalidOptions_AreArgumentExceptions()
    {
        using var engine = FakeEngine();
        using var client = new SharpInferChatClient(engine, ChatTemplates.ChatML);
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync(Conversation, new ChatOptions { TopP = 2 }));
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync(Conversation, new ChatOptions { Temperature = -1 }));
        await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 100_000 }));
        Assert.Equal(0, engine.Stats.Steps);
    }

    [SkippableFact]
    public async Task Stories260K_WithAnExplicitChatMLTemplate_StreamsAndStops()
    {
        string dir = TestModels.RequireStories260K();
        using var checkpoint = ModelLoader.Load(Path.Combine(dir, "gguf", "stories260K-f32.gguf"));
        Assert.Null(checkpoint.ChatTemplate);
        using var backend = ComputeBackend.Open(BackendKind.Cpu, threads: 2);
        using var model = new LlamaModel(checkpoint, backend);
        using var engine = new InferenceEngine(model, checkpoint.Tokenizer);
        Assert.Throws<InvalidOperationException>(() => new SharpInferChatClient(engine, checkpoint));

        using var client = new SharpInferChatClient(engine, checkpoint, new SharpInferChatClientOptions { ChatTemplate = ChatTemplates.ChatML });
        ChatMessage[] story = [new(ChatRole.User, "Once upon a time")];
        Assert.Equal("<|im_start|>user\nOnce upon a time<|im_end|>\n<|im_start|>assistant\n", client.RenderPrompt(story));
        Assert.Equal("stories260K-f32", client.Metadata.DefaultModelId);

        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 40 };
        var streamed = new List<string>();
        ChatResponseUpdate? final = null;
        await foreach (var u in client.GetStreamingResponseAsync(story, options))
        {
            streamed.Add(u.Text);
            final = u;
        }
        Assert.True(streamed.Count(t => t.Length > 0) > 3, "text should arrive in several updates");
        Assert.NotNull(final!.FinishReason);

        // Greedy text equals the engine's for the same prompt ids.
        int[] ids = client.EncodePrompt(story);
        Assert.Equal(checkpoint.Tokenizer.BosId, ids[0]);
        var direct = await Completion.CollectAsync(engine.GenerateAsync(ids, SamplingParams.Greedy with { MaxTokens = 40 }));
        Assert.Equal(direct.Text, string.Concat(streamed));

        // A stop sequence from the middle of that text cuts the response there.
        string stop = direct.Text.Split(' ', StringSplitOptions.RemoveEmptyEntries)[3];
        var cut = await client.GetResponseAsync(story, new ChatOptions { Temperature = 0, MaxOutputTokens = 40, StopSequences = [stop] });
        Assert.Equal(direct.Text[..direct.Text.IndexOf(stop, StringComparison.Ordinal)], cut.Text);
        Assert.Equal(ChatFinishReason.Stop, cut.FinishReason);
        Assert.True(cut.Usage!.CachedInputTokenCount >= 0);
        Assert.Equal(0, engine.Stats.KvBlocksUsed);
    }
}
