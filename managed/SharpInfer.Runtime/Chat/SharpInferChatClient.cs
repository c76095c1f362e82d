// SharpInferChatClient.cs: Microsoft.Extensions.AI's IChatClient over an InferenceEngine. Renders
// the conversation with the model's chat template, maps ChatOptions to SamplingParams, streams
// text updates, and ends with the finish reason and usage (cached input tokens included).
using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.AI;
using SharpInfer.Engine;
using SharpInfer.Models;

namespace SharpInfer.Chat;

public sealed record SharpInferChatClientOptions
{
    /// <summary>Jinja chat template to use instead of the model's (required when the model has none;
    /// see <see cref="ChatTemplates"/>).</summary>
    public string? ChatTemplate { get; init; }
    /// <summary>Reported as the model id.</summary>
    public string? ModelId { get; init; }
    /// <summary>Parameters for whatever ChatOptions leave unset. Its MaxTokens is capped to what fits
    /// in the context when the caller sets no MaxOutputTokens.</summary>
    public SamplingParams DefaultSampling { get; init; } = new() { MaxTokens = 256 };
    /// <summary>Scheduling priority of this client's requests (larger first); ChatOptions.AdditionalProperties["priority"] overrides.</summary>
    public int Priority { get; init; }
    /// <summary>Prepend BOS to the rendered prompt: null adds it when the tokenizer asks for it and
    /// the template did not emit it itself.</summary>
    public bool? AddBos { get; init; }
}

/// <summary>
/// An IChatClient over a SharpInfer engine. Honors ChatOptions.Temperature, TopP, TopK,
/// MaxOutputTokens, StopSequences, Seed, FrequencyPenalty, PresencePenalty and Instructions (as a
/// leading system message), plus AdditionalProperties "min_p", "repetition_penalty" and "priority".
/// Tools and JSON response formats are not supported (NotSupportedException). The engine stays the
/// caller's: disposing the client does not dispose it.
/// </summary>
public sealed class SharpInferChatClient : IChatClient
{
    private readonly InferenceEngine _engine;
    private readonly SharpInferChatClientOptions _options;
    private readonly string _bosText, _eosText;

    /// <summary>A client for the model loaded in <paramref name="checkpoint"/> (its chat template and name).</summary>
    public SharpInferChatClient(InferenceEngine engine, ModelCheckpoint checkpoint, SharpInferChatClientOptions? options = null)
        : this(engine, (checkpoint ?? throw new ArgumentNullException(nameof(checkpoint))).ChatTemplate, NameModel(options, checkpoint))
    {
    }

    private static SharpInferChatClientOptions NameModel(SharpInferChatClientOptions? options, ModelCheckpoint checkpoint)
    {
        options ??= new SharpInferChatClientOptions();
        return options.ModelId is not null ? options
            : options with { ModelId = Path.GetFileNameWithoutExtension(checkpoint.SourcePath.TrimEnd('/', '\\')) };
    }

    /// <summary>A client whose model ships <paramref name="modelChatTemplate"/> (null: none).</summary>
    public SharpInferChatClient(InferenceEngine engine, string? modelChatTemplate, SharpInferChatClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        _engine = engine;
        _options = options ?? new SharpInferChatClientOptions();
        _options.DefaultSampling.Validate();
        string source = _options.ChatTemplate ?? modelChatTemplate ?? throw new InvalidOperationException(
            "the model has no chat template (tokenizer_config.json chat_template or GGUF tokenizer.chat_template); " +
            "pass one in SharpInferChatClientOptions.ChatTemplate, e.g. ChatTemplates.ChatML");
        Template = ChatTemplate.Parse(source);
        var tokenizer = engine.Tokenizer;
        _bosText = tokenizer.IdToPiece(tokenizer.BosId) ?? "";
        _eosText = tokenizer.IdToPiece(tokenizer.EosId) ?? "";
        Metadata = new ChatClientMetadata("sharpinfer", providerUri: null, defaultModelId: _options.ModelId ?? "sharpinfer");
    }

    public ChatTemplate Template { get; }
    public ChatClientMetadata Metadata { get; }

    /// <summary>The prompt text the template renders for <paramref name="messages"/> (with the generation prompt).</summary>
    public string RenderPrompt(IEnumerable<ChatMessage> messages, ChatOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = new List<ChatTemplateMessage>();
        if (!string.IsNullOrEmpty(options?.Instructions)) list.Add(new ChatTemplateMessage("system", options.Instructions));
        foreach (var m in messages)
        {
            var text = new StringBuilder();
            foreach (var content in m.Contents)
            {
                if (content is TextContent t) text.Append(t.Text);
                else throw new NotSupportedException($"message content of type {content.GetType().Name} is not supported (text only)");
            }
            list.Add(new ChatTemplateMessage(m.Role.Value, text.ToString()));
        }
        return Template.Render(list, addGenerationPrompt: true, _bosText, _eosText);
    }

    /// <summary>The token ids the engine receives for <paramref name="messages"/>.</summary>
    public int[] EncodePrompt(IEnumerable<ChatMessage> messages, ChatOptions? options = null)
    {
        string prompt = RenderPrompt(messages, options);
        var tokenizer = _engine.Tokenizer;
        bool addBos = _options.AddBos ?? (tokenizer.AddBosToken && !(_bosText.Length > 0 && prompt.StartsWith(_bosText, StringComparison.Ordinal)));
        return tokenizer.Encode(prompt, addBos, parseSpecial: true);
    }

    /// <summary>The SamplingParams a request with <paramref name="options"/> and a prompt of
    /// <paramref name="promptTokens"/> tokens runs with.</summary>
    public SamplingParams ToSamplingParams(ChatOptions? options, int promptTokens)
    {
        var p = _options.DefaultSampling;
        if (options is null) return p with { MaxTokens = Math.Max(0, Math.Min(p.MaxTokens, _engine.MaxContext - promptTokens)) };
        if (options.Tools is { Count: > 0 }) throw new NotSupportedException("tool calling is not supported by SharpInferChatClient");
        if (options.ResponseFormat is ChatResponseFormatJson) throw new NotSupportedException("JSON response formats are not supported by SharpInferChatClient");
        if (options.Temperature is float t) p = p with { Temperature = t };
        if (options.TopP is float topP) p = p with { TopP = topP };
        if (options.TopK is int topK) p = p with { TopK = topK };
        if (options.FrequencyPenalty is float fp) p = p with { FrequencyPenalty = fp };
        if (options.PresencePenalty is float pp) p = p with { PresencePenalty = pp };
        if (options.Seed is long seed) p = p with { Seed = unchecked((ulong)seed) };
        if (options.StopSequences is { Count: > 0 } stops) p = p with { StopStrings = [.. stops] };
        p = options.MaxOutputTokens is int max ? p with { MaxTokens = max }
            : p with { MaxTokens = Math.Max(0, Math.Min(p.MaxTokens, _engine.MaxContext - promptTokens)) };
        if (options.AdditionalProperties is { } extra)
        {
            if (extra.TryGetValue("min_p", out var minP)) p = p with { MinP = Convert.ToSingle(minP, System.Globalization.CultureInfo.InvariantCulture) };
            if (extra.TryGetValue("repetition_penalty", out var rp)) p = p with { RepetitionPenalty = Convert.ToSingle(rp, System.Globalization.CultureInfo.InvariantCulture) };
        }
        return p;
    }

    private int PriorityOf(ChatOptions? options) =>
        options?.AdditionalProperties is { } extra && extra.TryGetValue("priority", out var value)
            ? Convert.ToInt32(value, System.Globalization.CultureInfo.InvariantCulture)
            : _options.Priority;

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        ChatResponseUpdate? last = null;
        UsageDetails? usage = null;
        await foreach (var update in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            text.Append(update.Text);
            foreach (var content in update.Contents)
                if (content is UsageContent u) usage = u.Details;
            last = update;
        }
        var message = new ChatMessage(ChatRole.Assistant, text.ToString()) { MessageId = last?.MessageId };
        return new ChatResponse(message)
        {
            ResponseId = last?.ResponseId,
            ModelId = Metadata.DefaultModelId,
            CreatedAt = last?.CreatedAt,
            FinishReason = last?.FinishReason,
            Usage = usage,
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        int[] prompt = EncodePrompt(messages, options);
        var parameters = ToSamplingParams(options, prompt.Length);
        string responseId = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow;

        ChatResponseUpdate Update(IList<AIContent> contents) => new(ChatRole.Assistant, contents)
        {
            ResponseId = responseId,
            MessageId = responseId,
            ModelId = Metadata.DefaultModelId,
            CreatedAt = created,
        };

        await foreach (var delta in _engine.GenerateAsync(prompt, parameters, PriorityOf(options), cancellationToken).ConfigureAwait(false))
        {
            if (!delta.IsFinal)
            {
                if (delta.Text.Length > 0) yield return Update([new TextContent(delta.Text)]);
                continue;
            }
            var contents = new List<AIContent>();
            if (delta.Text.Length > 0) contents.Add(new TextContent(delta.Text));
            var usage = delta.Usage!;
            contents.Add(new UsageContent(new UsageDetails
            {
                InputTokenCount = usage.PromptTokens,
                OutputTokenCount = usage.CompletionTokens,
                TotalTokenCount = usage.TotalTokens,
                CachedInputTokenCount = usage.CachedPromptTokens,
            }));
            var final = Update(contents);
            final.FinishReason = delta.FinishReason == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop;
            yield return final;
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return Metadata;
        if (serviceType == typeof(InferenceEngine)) return _engine;
        if (serviceType == typeof(ChatTemplate)) return Template;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Nothing to release: the engine belongs to the caller.</summary>
    public void Dispose()
    {
    }
}
