// OpenAiApi.cs: the handlers of the OpenAI-compatible HTTP API over one InferenceEngine, mapped
// onto any ASP.NET Core route builder (MapOpenAiApi): OpenAiServer hosts them on their own, and
// a C# service can add them to its own application, under a prefix or behind its own auth.
//   GET  /health                 {"status": "ok"}
//   GET  /v1/models              the served model
//   GET  /metrics                the engine's counters in the Prometheus text format
//   POST /tokenize, /detokenize  token ids of a prompt (or chat messages, templated) and back,
//                                as vLLM names them, so clients can count tokens
//   POST /v1/chat/completions    messages rendered with the model's chat template (or the one
//                                the server was given); streamed as server-sent events with
//                                "stream": true
//   POST /v1/completions         a text prompt
// Every request runs through the engine's continuous batching, so concurrent requests share
// steps and the prefix cache (usage reports cached prompt tokens as
// prompt_tokens_details.cached_tokens). A bad request is answered 400 with an OpenAI-style error
// naming the parameter, before anything is queued; a client that disconnects cancels its
// request, which frees its KV blocks at once. JSON is read and written by hand (no reflection),
// so the API stays NativeAOT-compatible.
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SharpInfer.Chat;
using SharpInfer.Engine;

namespace SharpInfer.Server;

public static class OpenAiApiEndpoints
{
    /// <summary>
    /// Maps the API's routes onto <paramref name="routes"/> (an application or a route group) for
    /// <paramref name="engine"/>; returns the handlers (e.g. to ask why chat is unavailable).
    /// </summary>
    public static OpenAiApi MapOpenAiApi(this IEndpointRouteBuilder routes, InferenceEngine engine, OpenAiServerOptions? options = null)
    {
        var api = new OpenAiApi(engine, options ?? new OpenAiServerOptions());
        api.Map(routes);
        return api;
    }
}

public sealed class OpenAiApi : IDisposable
{
    // Text as written (quotes and < > unescaped): the responses are JSON, never embedded in HTML.
    private static readonly JsonWriterOptions JsonOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly InferenceEngine _engine;
    private readonly OpenAiServerOptions _options;
    private readonly SharpInferChatClient? _chat;
    private readonly string? _chatUnavailable;

    public OpenAiApi(InferenceEngine engine, OpenAiServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(engine);
        _engine = engine;
        _options = options ?? new OpenAiServerOptions();
        try
        {
            _chat = new SharpInferChatClient(engine, _options.ModelChatTemplate,
                new SharpInferChatClientOptions { ChatTemplate = _options.ChatTemplate, ModelId = _options.ModelId });
        }
        catch (InvalidOperationException e)
        {
            _chatUnavailable = e.Message + " (sharpinfer serve --chat-template)";
        }
    }

    /// <summary>Chat is unavailable (no template anywhere): why, else null.</summary>
    public string? ChatUnavailableReason => _chatUnavailable;

    internal void Map(IEndpointRouteBuilder routes)
    {
        routes.MapGet("/health", context => WriteJsonAsync(context, 200, w => w.WriteString("status", "ok")));
        routes.MapGet("/v1/models", ListModelsAsync);
        routes.MapGet("/metrics", WriteMetricsAsync);
        routes.MapPost("/tokenize", TokenizeAsync);
        routes.MapPost("/detokenize", DetokenizeAsync);
        routes.MapPost("/v1/chat/completions", context => HandleAsync(context, OpenAiEndpoint.ChatCompletions));
        routes.MapPost("/v1/completions", context => HandleAsync(context, OpenAiEndpoint.Completions));
    }

    public void Dispose() => _chat?.Dispose();

    private Task ListModelsAsync(HttpContext context) => WriteJsonAsync(context, 200, w =>
    {
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        w.WriteStartObject();
        w.WriteString("id", _options.ModelId);
        w.WriteString("object", "model");
        w.WriteNumber("created", 0);
        w.WriteString("owned_by", "sharpinfer");
        w.WriteNumber("max_model_len", _engine.MaxContext);
        w.WriteEndObject();
        w.WriteEndArray();
    });

    // The token ids the engine receives: chat messages through the template, a text prompt with
    // the tokenizer's BOS policy.
    private int[] EncodePrompt(OpenAiRequest request)
    {
        if (request.Endpoint == OpenAiEndpoint.Completions)
            return _engine.Tokenizer.Encode(request.Prompt!, _engine.Tokenizer.AddBosToken);
        if (_chat is null) throw new OpenAiRequestException(_chatUnavailable!, "messages", "chat_template_missing");
        return _chat.EncodePrompt(request.Messages!);
    }

    // {"prompt": text} or {"messages": [...]} (rendered with the chat template) -> token ids.
    private async Task TokenizeAsync(HttpContext context)
    {
        int[] tokens;
        try
        {
            byte[] body = await ReadBodyAsync(context.Request, _options.MaxRequestBytes, context.RequestAborted);
            using var document = OpenAiRequest.ParseObject(body);
            var root = document.RootElement;
            tokens = EncodePrompt(OpenAiRequest.Parse(root, root.TryGetProperty("messages", out _) ? OpenAiEndpoint.ChatCompletions : OpenAiEndpoint.Completions));
        }
        catch (OpenAiRequestException e)
        {
            await WriteErrorAsync(context, 400, e.Message, "invalid_request_error", e.Param, e.Code);
            return;
        }
        catch (Exception e) when (e is NotSupportedException or ChatTemplateException)
        {
            await WriteErrorAsync(context, 400, e.Message, "invalid_request_error", "messages", "invalid_value");
            return;
        }
        await WriteJsonAsync(context, 200, w =>
        {
            w.WriteStartArray("tokens");
            foreach (int id in tokens) w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteNumber("count", tokens.Length);
            w.WriteNumber("max_model_len", _engine.MaxContext);
        });
    }

    // {"tokens": [ids]} -> {"prompt": text} (special tokens kept).
    private async Task DetokenizeAsync(HttpContext context)
    {
        var ids = new List<int>();
        try
        {
            byte[] body = await ReadBodyAsync(context.Request, _options.MaxRequestBytes, context.RequestAborted);
            using var document = OpenAiRequest.ParseObject(body);
            if (!document.RootElement.TryGetProperty("tokens", out var tokens) || tokens.ValueKind != JsonValueKind.Array)
                throw new OpenAiRequestException("tokens is required (an array of token ids)", "tokens", "missing_required_parameter");
            foreach (var t in tokens.EnumerateArray())
            {
                if (t.ValueKind != JsonValueKind.Number || !t.TryGetInt32(out int id) || (uint)id >= (uint)_engine.VocabSize)
                    throw new OpenAiRequestException($"tokens must be ids in [0, {_engine.VocabSize})", "tokens", "invalid_value");
                ids.Add(id);
            }
        }
        catch (OpenAiRequestException e)
        {
            await WriteErrorAsync(context, 400, e.Message, "invalid_request_error", e.Param, e.Code);
            return;
        }
        string text = _engine.Tokenizer.Decode(ids, skipSpecial: false);
        await WriteJsonAsync(context, 200, w => w.WriteString("prompt", text));
    }

    // One snapshot of EngineStats as Prometheus gauges and counters (sharpinfer_ prefix).
    private Task WriteMetricsAsync(HttpContext context)
    {
        var stats = _engine.Stats;
        var text = new StringBuilder();
        void Metric(string name, string type, string help, double value)
        {
            text.Append("# HELP sharpinfer_").Append(name).Append(' ').Append(help).Append('\n');
            text.Append("# TYPE sharpinfer_").Append(name).Append(' ').Append(type).Append('\n');
            text.Append("sharpinfer_").Append(name).Append(' ').Append(value.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        }
        Metric("running_sequences", "gauge", "Sequences holding KV blocks.", stats.RunningSequences);
        Metric("waiting_sequences", "gauge", "Requests waiting for admission.", stats.WaitingSequences);
        Metric("kv_blocks_total", "gauge", "Blocks in the KV pool.", stats.KvBlocksTotal);
        Metric("kv_blocks_used", "gauge", "KV blocks referenced by a sequence.", stats.KvBlocksUsed);
        Metric("kv_blocks_cached", "gauge", "Free KV blocks that still hold a reusable prefix.", stats.KvBlocksCached);
        Metric("preemptions_total", "counter", "Sequences preempted (recomputed later) when blocks ran out.", stats.Preemptions);
        Metric("prefix_cache_query_tokens_total", "counter", "Prompt tokens looked up in the prefix cache.", stats.PrefixCacheQueryTokens);
        Metric("prefix_cache_hit_tokens_total", "counter", "Prompt tokens reused from the prefix cache.", stats.PrefixCacheHitTokens);
        Metric("prompt_tokens_computed_total", "counter", "Prompt positions run through the model.", stats.PromptTokensComputed);
        Metric("generated_tokens_total", "counter", "Tokens generated.", stats.GeneratedTokens);
        Metric("steps_total", "counter", "Engine steps (batched forwards).", stats.Steps);
        Metric("requests_completed_total", "counter", "Requests finished (any reason).", stats.CompletedRequests);
        context.Response.ContentType = "text/plain; version=0.0.4";
        return context.Response.WriteAsync(text.ToString());
    }

    private async Task HandleAsync(HttpContext context, OpenAiEndpoint endpoint)
    {
        bool chat = endpoint == OpenAiEndpoint.ChatCompletions;
        OpenAiRequest request;
        int[] prompt;
        SamplingParams sampling;
        try
        {
            byte[] body = await ReadBodyAsync(context.Request, _options.MaxRequestBytes, context.RequestAborted);
            request = OpenAiRequest.Parse(body, endpoint);
            prompt = EncodePrompt(request);
            if (prompt.Length > _engine.MaxContext)
                throw new OpenAiRequestException($"the prompt has {prompt.Length} tokens, more than the model's context of {_engine.MaxContext} tokens",
                    chat ? "messages" : "prompt", "context_length_exceeded");
            // Unset max tokens: completions 16, chat the rest of the context; either within the server's limit.
            int maxTokens = request.MaxTokens ?? (chat ? _engine.MaxContext - prompt.Length : OpenAiRequest.DefaultCompletionTokens);
            if (request.MaxTokens is null && _engine.MaxTokensLimit > 0) maxTokens = Math.Min(maxTokens, _engine.MaxTokensLimit);
            if (maxTokens < 1)
                throw new OpenAiRequestException($"the prompt's {prompt.Length} tokens leave no room in the model's context of {_engine.MaxContext}",
                    chat ? "messages" : "prompt", "context_length_exceeded");
            sampling = request.Sampling with { MaxTokens = maxTokens };
            _engine.ValidateRequest(prompt, sampling);
        }
        catch (OpenAiRequestException e)
        {
            await WriteErrorAsync(context, 400, e.Message, "invalid_request_error", e.Param, e.Code);
            return;
        }
        catch (ArgumentException e)
        {
            // Sampling ranges and engine limits (context, KV pool): the runtime's own message.
            // ArgumentException appends " (Parameter 'name')": the C# name means nothing to a client.
            string message = e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal);
            await WriteErrorAsync(context, 400, message, "invalid_request_error", ParamOf(message, chat), "invalid_value");
            return;
        }
        catch (NotSupportedException e)
        {
            await WriteErrorAsync(context, 400, e.Message, "invalid_request_error", null, "unsupported_value");
            return;
        }
        catch (ChatTemplateException e)
        {
            // The template itself refused the conversation (e.g. roles it does not alternate).
            await WriteErrorAsync(context, 400, $"the chat template cannot render these messages: {e.Message}", "invalid_request_error", "messages", "invalid_value");
            return;
        }
        catch (BadHttpRequestException e)
        {
            await WriteErrorAsync(context, e.StatusCode, e.Message, "invalid_request_error", null, "bad_request");
            return;
        }

        string id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string model = _options.ModelId;
        var deltas = _engine.GenerateAsync(prompt, sampling, request.Priority, context.RequestAborted);
        try
        {
            if (request.Stream) await StreamAsync(context, request, deltas, id, created, model);
            else await RespondAsync(context, request, deltas, id, created, model);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; the engine has already released the request.
        }
        catch (Exception e) when (!context.Response.HasStarted)
        {
            // A failure inside the engine (e.g. a native error): a readable 500, never a bare one.
            await WriteErrorAsync(context, 500, e.Message, "server_error", null, "internal_error");
        }
    }

    // The request parameter a runtime message (SamplingParams.Validate, engine limits) is about.
    private static string? ParamOf(string message, bool chat)
    {
        (string Prefix, string Param)[] names =
        [
            ("temperature", "temperature"), ("top-k", "top_k"), ("top-p", "top_p"), ("min-p", "min_p"),
            ("repetition penalty", "repetition_penalty"), ("frequency penalty", "frequency_penalty"),
            ("presence penalty", "presence_penalty"), ("logit bias", "logit_bias"), ("top logprobs", chat ? "top_logprobs" : "logprobs"),
            ("max tokens", "max_tokens"), ("stop strings", "stop"), ("the prompt's", "max_tokens"), ("the request needs", "max_tokens"),
            ("the prompt", chat ? "messages" : "prompt"), ("prompt token", chat ? "messages" : "prompt"),
        ];
        foreach (var (prefix, param) in names)
            if (message.StartsWith(prefix, StringComparison.Ordinal)) return param;
        return null;
    }

    private async Task RespondAsync(HttpContext context, OpenAiRequest request, IAsyncEnumerable<GenerationDelta> deltas, string id, long created, string model)
    {
        var text = new StringBuilder();
        var logprobs = request.Sampling.Logprobs ? new List<TokenLogprobs>() : null;
        GenerationDelta? final = null;
        await foreach (var delta in deltas.WithCancellation(context.RequestAborted))
        {
            text.Append(delta.Text);
            if (delta.Logprobs is { } lp) logprobs?.AddRange(lp);
            if (delta.IsFinal) final = delta;
        }
        bool chat = request.Endpoint == OpenAiEndpoint.ChatCompletions;
        await WriteJsonAsync(context, 200, w =>
        {
            w.WriteString("id", id);
            w.WriteString("object", chat ? "chat.completion" : "text_completion");
            w.WriteNumber("created", created);
            w.WriteString("model", model);
            w.WriteStartArray("choices");
            w.WriteStartObject();
            w.WriteNumber("index", 0);
            if (chat)
            {
                w.WriteStartObject("message");
                w.WriteString("role", "assistant");
                w.WriteString("content", text.ToString());
                w.WriteEndObject();
            }
            else
            {
                w.WriteString("text", text.ToString());
            }
            WriteLogprobs(w, chat, logprobs);
            w.WriteString("finish_reason", FinishReasonName(final?.FinishReason));
            w.WriteEndObject();
            w.WriteEndArray();
            if (final?.Usage is { } usage) WriteUsage(w, usage);
        });
    }

    private async Task StreamAsync(HttpContext context, OpenAiRequest request, IAsyncEnumerable<GenerationDelta> deltas, string id, long created, string model)
    {
        bool chat = request.Endpoint == OpenAiEndpoint.ChatCompletions;
        var response = context.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        await response.StartAsync(context.RequestAborted);
        bool first = true;
        try
        {
            await foreach (var delta in deltas.WithCancellation(context.RequestAborted))
            {
                bool hasContent = delta.Text.Length > 0 || delta.Logprobs is { Count: > 0 };
                if (!hasContent && !delta.IsFinal && !first) continue;
                await WriteEventAsync(response, w =>
                {
                    WriteChunkHeader(w, chat, id, created, model);
                    w.WriteStartArray("choices");
                    w.WriteStartObject();
                    w.WriteNumber("index", 0);
                    if (chat)
                    {
                        w.WriteStartObject("delta");
                        if (first) w.WriteString("role", "assistant");
                        if (delta.Text.Length > 0 || !first) w.WriteString("content", delta.Text);
                        w.WriteEndObject();
                    }
                    else
                    {
                        w.WriteString("text", delta.Text);
                    }
                    WriteLogprobs(w, chat, delta.Logprobs);
                    if (delta.IsFinal) w.WriteString("finish_reason", FinishReasonName(delta.FinishReason));
                    else w.WriteNull("finish_reason");
                    w.WriteEndObject();
                    w.WriteEndArray();
                }, context.RequestAborted);
                first = false;
                if (delta.IsFinal && request.IncludeUsage && delta.Usage is { } usage)
                {
                    await WriteEventAsync(response, w =>
                    {
                        WriteChunkHeader(w, chat, id, created, model);
                        w.WriteStartArray("choices");
                        w.WriteEndArray();
                        WriteUsage(w, usage);
                    }, context.RequestAborted);
                }
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Headers are sent: the error travels as an event, then the stream ends.
            await WriteEventAsync(response, w => WriteErrorBody(w, e.Message, "server_error", null, "internal_error"), CancellationToken.None);
        }
        await response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
        await response.Body.FlushAsync(context.RequestAborted);
    }

    private static void WriteChunkHeader(Utf8JsonWriter w, bool chat, string id, long created, string model)
    {
        w.WriteString("id", id);
        w.WriteString("object", chat ? "chat.completion.chunk" : "text_completion");
        w.WriteNumber("created", created);
        w.WriteString("model", model);
    }

    private static string FinishReasonName(FinishReason? reason) => reason switch
    {
        FinishReason.Length => "length",
        _ => "stop",  // end of sequence or a stop string
    };

    private static void WriteUsage(Utf8JsonWriter w, GenerationUsage usage)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", usage.PromptTokens);
        w.WriteNumber("completion_tokens", usage.CompletionTokens);
        w.WriteNumber("total_tokens", usage.TotalTokens);
        w.WriteStartObject("prompt_tokens_details");
        w.WriteNumber("cached_tokens", usage.CachedPromptTokens);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    // Chat: {"content": [{token, logprob, bytes, top_logprobs: [...]}]}; completions: the legacy
    // {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}.
    private void WriteLogprobs(Utf8JsonWriter w, bool chat, IReadOnlyList<TokenLogprobs>? logprobs)
    {
        if (logprobs is null) return;
        var tokenizer = _engine.Tokenizer;
        string Text(int tokenId) => tokenizer.Decode([tokenId], skipSpecial: false);
        w.WriteStartObject("logprobs");
        if (chat)
        {
            w.WriteStartArray("content");
            foreach (var t in logprobs)
            {
                w.WriteStartObject();
                WriteTokenLogprob(w, Text(t.TokenId), t.Logprob);
                w.WriteStartArray("top_logprobs");
                foreach (var alt in t.TopAlternatives)
                {
                    w.WriteStartObject();
                    WriteTokenLogprob(w, Text(alt.TokenId), alt.Logprob);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        else
        {
            string[] texts = [.. logprobs.Select(t => Text(t.TokenId))];  // decoded once: tokens and text_offset
            w.WriteStartArray("tokens");
            foreach (string text in texts) w.WriteStringValue(text);
            w.WriteEndArray();
            w.WriteStartArray("token_logprobs");
            foreach (var t in logprobs) w.WriteNumberValue(t.Logprob);
            w.WriteEndArray();
            w.WriteStartArray("top_logprobs");
            foreach (var t in logprobs)
            {
                w.WriteStartObject();
                foreach (var alt in t.TopAlternatives) w.WriteNumber(Text(alt.TokenId), alt.Logprob);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("text_offset");
            int offset = 0;
            foreach (string text in texts)
            {
                w.WriteNumberValue(offset);
                offset += text.Length;
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
    }

    private static void WriteTokenLogprob(Utf8JsonWriter w, string token, float logprob)
    {
        w.WriteString("token", token);
        w.WriteNumber("logprob", logprob);
        w.WriteStartArray("bytes");
        foreach (byte b in Encoding.UTF8.GetBytes(token)) w.WriteNumberValue(b);
        w.WriteEndArray();
    }

    private static async Task<byte[]> ReadBodyAsync(HttpRequest request, long maxBytes, CancellationToken cancellationToken)
    {
        if (request.ContentLength > maxBytes)
            throw new OpenAiRequestException($"the request body of {request.ContentLength} bytes exceeds the limit of {maxBytes}", null, "request_too_large");
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > maxBytes)
                throw new OpenAiRequestException($"the request body exceeds the limit of {maxBytes} bytes", null, "request_too_large");
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    private static async Task WriteEventAsync(HttpResponse response, Action<Utf8JsonWriter> write, CancellationToken cancellationToken)
    {
        var buffer = new MemoryStream();
        buffer.Write("data: "u8);
        using (var w = new Utf8JsonWriter(buffer, JsonOptions)) { w.WriteStartObject(); write(w); w.WriteEndObject(); }
        buffer.Write("\n\n"u8);
        await response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    private static async Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, JsonOptions)) { w.WriteStartObject(); write(w); w.WriteEndObject(); }
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length));
    }

    private static void WriteErrorBody(Utf8JsonWriter w, string message, string type, string? param, string code)
    {
        w.WriteStartObject("error");
        w.WriteString("message", message);
        w.WriteString("type", type);
        if (param is null) w.WriteNull("param");
        else w.WriteString("param", param);
        w.WriteString("code", code);
        w.WriteEndObject();
    }

    internal static Task WriteErrorAsync(HttpContext context, int status, string message, string type, string? param, string code) =>
        WriteJsonAsync(context, status, w => WriteErrorBody(w, message, type, param, code));
}
