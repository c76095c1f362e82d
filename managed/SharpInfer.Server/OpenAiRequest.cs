// OpenAiRequest.cs: the body of POST /v1/chat/completions and /v1/completions, read field by
// field (no reflection, so the server stays NativeAOT-compatible) into what the engine takes.
// Every malformed or out-of-range field is an OpenAiRequestException naming it, answered with
// 400 before anything is queued. Fields SharpInfer adds to the OpenAI set (as vLLM does): top_k,
// min_p, repetition_penalty, ignore_eos, priority.
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.AI;
using SharpInfer.Engine;

namespace SharpInfer.Server;

/// <summary>A request the server refuses: 400 with an OpenAI-style error naming the parameter.</summary>
public sealed class OpenAiRequestException(string message, string? param = null, string code = "invalid_value") : Exception(message)
{
    public string? Param { get; } = param;
    public string Code { get; } = code;
}

public enum OpenAiEndpoint { ChatCompletions, Completions }

/// <summary>A parsed request: the prompt (chat messages or text) and how to sample.</summary>
public sealed record OpenAiRequest
{
    public required OpenAiEndpoint Endpoint { get; init; }
    public string? Model { get; init; }
    /// <summary>Chat: the conversation. Null for completions.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }
    /// <summary>Completions: the prompt text. Null for chat.</summary>
    public string? Prompt { get; init; }
    /// <summary>Sampling without MaxTokens resolved (see <see cref="MaxTokens"/>).</summary>
    public required SamplingParams Sampling { get; init; }
    /// <summary>max_tokens / max_completion_tokens, or null for the endpoint's default.</summary>
    public int? MaxTokens { get; init; }
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }
    public int Priority { get; init; }

    /// <summary>Completions default to 16 tokens (as OpenAI's); chat runs to the end of the context.</summary>
    public const int DefaultCompletionTokens = 16;

    /// <summary>The body as a JSON object, or an OpenAiRequestException (invalid_json, or not an object).</summary>
    public static JsonDocument ParseObject(ReadOnlySpan<byte> body)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body.ToArray());
        }
        catch (JsonException e)
        {
            throw new OpenAiRequestException($"the request body is not valid JSON: {e.Message}", null, "invalid_json");
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            document.Dispose();
            throw new OpenAiRequestException("the request body must be a JSON object");
        }
        return document;
    }

    public static OpenAiRequest Parse(ReadOnlySpan<byte> body, OpenAiEndpoint endpoint)
    {
        using var document = ParseObject(body);
        return Parse(document.RootElement, endpoint);
    }

    /// <summary>A request from an already parsed JSON object.</summary>
    public static OpenAiRequest Parse(JsonElement root, OpenAiEndpoint endpoint)
    {
        bool chat = endpoint == OpenAiEndpoint.ChatCompletions;

        if (Optional(root, "n") is { } n && (n.ValueKind != JsonValueKind.Number || !n.TryGetInt32(out int count) || count != 1))
            throw new OpenAiRequestException("only n = 1 is supported", "n", "unsupported_value");
        // Features SharpInfer does not have are refused, never silently ignored.
        if (chat && Optional(root, "tools") is { ValueKind: JsonValueKind.Array } tools && tools.GetArrayLength() > 0)
            throw new OpenAiRequestException("tool calling is not supported", "tools", "unsupported_value");
        if (chat && Optional(root, "functions") is not null)
            throw new OpenAiRequestException("function calling is not supported", "functions", "unsupported_value");
        if (Optional(root, "response_format") is { } format
            && !(format.ValueKind == JsonValueKind.Object && format.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "text"))
            throw new OpenAiRequestException("only response_format {\"type\": \"text\"} is supported (no JSON mode or schemas)", "response_format", "unsupported_value");
        if (!chat && Int(root, "best_of") is > 1)
            throw new OpenAiRequestException("only best_of = 1 is supported", "best_of", "unsupported_value");
        if (!chat && (Bool(root, "echo") ?? false))
            throw new OpenAiRequestException("echo is not supported", "echo", "unsupported_value");
        if (!chat && String(root, "suffix") is { Length: > 0 })
            throw new OpenAiRequestException("suffix (insertion) is not supported", "suffix", "unsupported_value");

        var sampling = new SamplingParams
        {
            Temperature = Float(root, "temperature") ?? 1.0f,
            TopP = Float(root, "top_p") ?? 1.0f,
            TopK = Int(root, "top_k") ?? 0,
            MinP = Float(root, "min_p") ?? 0f,
            PresencePenalty = Float(root, "presence_penalty") ?? 0f,
            FrequencyPenalty = Float(root, "frequency_penalty") ?? 0f,
            RepetitionPenalty = Float(root, "repetition_penalty") ?? 1.0f,
            Seed = Optional(root, "seed") is { } seed ? Seed(seed) : null,
            StopStrings = Stops(root),
            LogitBias = LogitBias(root),
            IgnoreEos = Bool(root, "ignore_eos") ?? false,
        };
        if (chat)
        {
            bool logprobs = Bool(root, "logprobs") ?? false;
            int top = Int(root, "top_logprobs") ?? 0;
            if (top > 0 && !logprobs) throw new OpenAiRequestException("top_logprobs needs logprobs: true", "top_logprobs");
            sampling = sampling with { Logprobs = logprobs, TopLogprobs = top };
        }
        else if (Int(root, "logprobs") is int top)
        {
            sampling = sampling with { Logprobs = true, TopLogprobs = top };
        }

        int? maxTokens = Int(root, chat && root.TryGetProperty("max_completion_tokens", out _) ? "max_completion_tokens" : "max_tokens");
        if (maxTokens is < 1) throw new OpenAiRequestException($"max tokens must be >= 1 (got {maxTokens})", "max_tokens");

        bool stream = Bool(root, "stream") ?? false;
        bool includeUsage = Optional(root, "stream_options") is { } options
            && (options.ValueKind == JsonValueKind.Object ? Bool(options, "include_usage") ?? false
                : throw new OpenAiRequestException("stream_options must be an object", "stream_options"));

        return new OpenAiRequest
        {
            Endpoint = endpoint,
            Model = String(root, "model"),
            Messages = chat ? ParseMessages(root) : null,
            Prompt = chat ? null : String(root, "prompt") ?? throw new OpenAiRequestException("prompt is required (a string)", "prompt", "missing_required_parameter"),
            Sampling = sampling,
            MaxTokens = maxTokens,
            Stream = stream,
            IncludeUsage = includeUsage,
            Priority = Int(root, "priority") ?? 0,
        };
    }

    private static JsonElement? Optional(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    private static float? Float(JsonElement root, string name)
    {
        if (Optional(root, name) is not { } value) return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double d) || !double.IsFinite(d))
            throw new OpenAiRequestException($"{name} must be a number", name, "invalid_type");
        return (float)d;
    }

    private static int? Int(JsonElement root, string name)
    {
        if (Optional(root, name) is not { } value) return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int i))
            throw new OpenAiRequestException($"{name} must be an integer", name, "invalid_type");
        return i;
    }

    private static bool? Bool(JsonElement root, string name)
    {
        if (Optional(root, name) is not { } value) return null;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new OpenAiRequestException($"{name} must be true or false", name, "invalid_type"),
        };
    }

    private static string? String(JsonElement root, string name)
    {
        if (Optional(root, name) is not { } value) return null;
        return value.ValueKind == JsonValueKind.String ? value.GetString()
            : throw new OpenAiRequestException($"{name} must be a string", name, "invalid_type");
    }

    private static ulong Seed(JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long seed) ? unchecked((ulong)seed)
            : throw new OpenAiRequestException("seed must be an integer", "seed", "invalid_type");

    private static IReadOnlyList<string> Stops(JsonElement root)
    {
        if (Optional(root, "stop") is not { } value) return [];
        if (value.ValueKind == JsonValueKind.String) return [value.GetString()!];
        if (value.ValueKind != JsonValueKind.Array) throw new OpenAiRequestException("stop must be a string or an array of strings", "stop", "invalid_type");
        var stops = new List<string>();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String || item.GetString() is not { Length: > 0 } text)
                throw new OpenAiRequestException("stop must hold non-empty strings", "stop", "invalid_type");
            stops.Add(text);
        }
        return stops;
    }

    private static IReadOnlyDictionary<int, float>? LogitBias(JsonElement root)
    {
        if (Optional(root, "logit_bias") is not { } value) return null;
        if (value.ValueKind != JsonValueKind.Object) throw new OpenAiRequestException("logit_bias must map token ids to numbers", "logit_bias", "invalid_type");
        var bias = new Dictionary<int, float>();
        foreach (var entry in value.EnumerateObject())
        {
            if (!int.TryParse(entry.Name, NumberStyles.None, CultureInfo.InvariantCulture, out int id)
                || entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetDouble(out double b) || !double.IsFinite(b))
                throw new OpenAiRequestException($"logit_bias entry \"{entry.Name}\" must map a token id to a number", "logit_bias", "invalid_type");
            bias[id] = (float)b;
        }
        return bias;
    }

    private static IReadOnlyList<ChatMessage> ParseMessages(JsonElement root)
    {
        if (Optional(root, "messages") is not { ValueKind: JsonValueKind.Array } value || value.GetArrayLength() == 0)
            throw new OpenAiRequestException("messages is required (a non-empty array)", "messages", "missing_required_parameter");
        var messages = new List<ChatMessage>();
        int index = 0;
        foreach (var item in value.EnumerateArray())
        {
            string param = $"messages[{index++}]";
            if (item.ValueKind != JsonValueKind.Object) throw new OpenAiRequestException($"{param} must be an object", param, "invalid_type");
            string role = String(item, "role") ?? throw new OpenAiRequestException($"{param}.role is required", param + ".role", "missing_required_parameter");
            if (role is not ("system" or "developer" or "user" or "assistant"))
                throw new OpenAiRequestException($"{param}.role \"{role}\" is not supported (system, developer, user, assistant)", param + ".role", "unsupported_value");
            messages.Add(new ChatMessage(new ChatRole(role == "developer" ? "system" : role), Content(item, param)));
        }
        return messages;
    }

    // A message's content: a string, or an array of {"type": "text", "text": ...} parts.
    private static string Content(JsonElement message, string param)
    {
        if (Optional(message, "content") is not { } content) return "";
        if (content.ValueKind == JsonValueKind.String) return content.GetString()!;
        if (content.ValueKind != JsonValueKind.Array) throw new OpenAiRequestException($"{param}.content must be a string or an array of text parts", param + ".content", "invalid_type");
        var text = new System.Text.StringBuilder();
        foreach (var part in content.EnumerateArray())
        {
            if (part.ValueKind != JsonValueKind.Object || String(part, "type") != "text" || String(part, "text") is not { } partText)
                throw new OpenAiRequestException($"{param}.content parts must be {{\"type\": \"text\", \"text\": ...}} (text only)", param + ".content", "unsupported_value");
            text.Append(partText);
        }
        return text.ToString();
    }
}
