// OpenAiServerTests.cs: the OpenAI-compatible HTTP API end to end on a loopback port, over a
// random-weight tiny model: greedy completions equal TextGenerator's, streamed chat equals the
// non-streamed one, concurrent requests equal their one-at-a-time results, bad requests get a
// 400 naming the parameter with nothing queued, and a client that disconnects leaks no blocks.
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using SharpInfer.Backends;
using SharpInfer.Chat;
using SharpInfer.Engine;
using SharpInfer.Llama;
using SharpInfer.Models;
using SharpInfer.Server;

namespace SharpInfer.Tests.Server;

public sealed class OpenAiServerTests : IAsyncLifetime
{
    // Random weights; with this seed the test conversations produce text rather than ending at once.
    private const int Seed = 1;
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"si-server-{Guid.NewGuid():N}.gguf");
    private ModelCheckpoint _checkpoint = null!;
    private ComputeBackend _backend = null!;
    private LlamaModel _model = null!;
    private InferenceEngine _engine = null!;
    private OpenAiServer _server = null!;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };

    public async Task InitializeAsync()
    {
        SyntheticModel.Write(_path, SyntheticModel.Tiny, SharpInfer.Models.Gguf.GgmlType.F32, seed: Seed);
        _checkpoint = ModelLoader.Load(_path);
        _backend = ComputeBackend.Open(BackendKind.Cpu, threads: 2);
        _model = new LlamaModel(_checkpoint, _backend);
        _engine = new InferenceEngine(_model, _checkpoint.Tokenizer);
        _server = new OpenAiServer(_engine, new OpenAiServerOptions { ModelId = "tiny", ChatTemplate = ChatTemplates.ChatML, Url = "http://127.0.0.1:0" });
        await _server.StartAsync();
        _http.BaseAddress = new Uri(_server.Urls.First());
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        _engine.Dispose();
        _model.Dispose();
        _backend.Dispose();
        _checkpoint.Dispose();
        File.Delete(_path);
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> PostAsync(string path, string json)
    {
        using var response = await _http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    // What TextGenerator produces greedily for the same prompt tokens.
    private GenerationResult Greedy(string prompt, int maxTokens)
    {
        var tokenizer = _checkpoint.Tokenizer;
        return new TextGenerator(_model, tokenizer).Generate(tokenizer.Encode(prompt, tokenizer.AddBosToken), SamplingParams.Greedy with { MaxTokens = maxTokens });
    }

    [Fact]
    public async Task ModelsAndHealth_DescribeTheServedModel()
    {
        var models = JsonDocument.Parse(await _http.GetStringAsync("/v1/models")).RootElement;
        Assert.Equal("list", models.GetProperty("object").GetString());
        Assert.Equal("tiny", models.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.Equal(SyntheticModel.Tiny.MaxContext, models.GetProperty("data")[0].GetProperty("max_model_len").GetInt32());
        Assert.Equal("ok", JsonDocument.Parse(await _http.GetStringAsync("/health")).RootElement.GetProperty("status").GetString());
        using var missing = await _http.GetAsync("/v1/nope");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Metrics_CountWhatTheEngineDid()
    {
        var (status, _) = await PostAsync("/v1/completions", """{"prompt": "count me", "max_tokens": 3, "temperature": 0, "ignore_eos": true}""");
        Assert.Equal(HttpStatusCode.OK, status);
        string text = await _http.GetStringAsync("/metrics");
        var values = text.Split('\n').Where(l => l.StartsWith("sharpinfer_", StringComparison.Ordinal))
            .Select(l => l.Split(' ')).ToDictionary(p => p[0], p => double.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
        var stats = _engine.Stats;
        Assert.Equal(stats.KvBlocksTotal, values["sharpinfer_kv_blocks_total"]);
        Assert.Equal(stats.GeneratedTokens, values["sharpinfer_generated_tokens_total"]);
        Assert.True(values["sharpinfer_generated_tokens_total"] >= 3);
        Assert.True(values["sharpinfer_requests_completed_total"] >= 1);
        Assert.Contains("# TYPE sharpinfer_steps_total counter", text);
    }

    [Fact]
    public async Task Tokenize_CountsWhatCompletionsBill_AndDetokenizeRoundTrips()
    {
        var (status, tokens) = await PostAsync("/tokenize", """{"prompt": "hello world"}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var ids = tokens.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray();
        Assert.Equal(_checkpoint.Tokenizer.Encode("hello world", _checkpoint.Tokenizer.AddBosToken), ids);
        Assert.Equal(ids.Length, tokens.GetProperty("count").GetInt32());
        var (_, completion) = await PostAsync("/v1/completions", """{"prompt": "hello world", "max_tokens": 1}""");
        Assert.Equal(ids.Length, completion.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        var (_, chat) = await PostAsync("/tokenize", """{"messages": [{"role": "user", "content": "hi"}]}""");
        var (_, chatCompletion) = await PostAsync("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}""");
        Assert.Equal(chat.GetProperty("count").GetInt32(), chatCompletion.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        var withoutBos = ids.Where(id => id != _checkpoint.Tokenizer.BosId).ToArray();
        var (_, text) = await PostAsync("/detokenize", $$"""{"tokens": [{{string.Join(", ", withoutBos)}}]}""");
        Assert.Equal("hello world", text.GetProperty("prompt").GetString());
        var (bad, error) = await PostAsync("/detokenize", """{"tokens": [-1]}""");
        Assert.Equal(HttpStatusCode.BadRequest, bad);
        Assert.Equal("tokens", error.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Completion_Greedy_EqualsTextGenerator_WithUsage()
    {
        var (status, body) = await PostAsync("/v1/completions", """{"model": "tiny", "prompt": "hello world", "max_tokens": 12, "temperature": 0}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var want = Greedy("hello world", 12);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(want.Text, choice.GetProperty("text").GetString());
        Assert.Equal(want.FinishReason == FinishReason.Length ? "length" : "stop", choice.GetProperty("finish_reason").GetString());
        var usage = body.GetProperty("usage");
        Assert.Equal(want.PromptTokens.Count, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(want.GeneratedTokens.Count, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
    }

    [Fact]
    public async Task Chat_Streamed_EqualsNonStreamed_AndEndsWithUsageAndDone()
    {
        const string request = """{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "tell a story"}]}], "max_tokens": 10, "temperature": 0, "ignore_eos": true%STREAM%}""";
        var (status, whole) = await PostAsync("/v1/chat/completions", request.Replace("%STREAM%", ""));
        Assert.Equal(HttpStatusCode.OK, status);
        string content = whole.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        int completionTokens = whole.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        Assert.Equal(10, completionTokens);  // ignore_eos: the whole budget
        Assert.True(content.Length > 0, "the conversation should produce text on the tiny model");

        using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent(request.Replace("%STREAM%", """, "stream": true, "stream_options": {"include_usage": true}"""), Encoding.UTF8, "application/json"),
        };
        using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e["data: ".Length..]).RootElement).ToList();
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        var text = new StringBuilder();
        foreach (var chunk in chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0))
            if (chunk.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var part)) text.Append(part.GetString());
        Assert.Equal(content, text.ToString());
        var usageChunk = chunks[^1];
        Assert.Equal(0, usageChunk.GetProperty("choices").GetArrayLength());
        Assert.Equal(completionTokens, usageChunk.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.NotEqual(JsonValueKind.Null, chunks[^2].GetProperty("choices")[0].GetProperty("finish_reason").ValueKind);
    }

    [Fact]
    public async Task RepeatedPrefix_ReportsCachedPromptTokens()
    {
        string request = """{"prompt": "a shared system preamble that is long enough to fill whole KV blocks of sixteen tokens each", "max_tokens": 2, "temperature": 0}""";
        var (_, first) = await PostAsync("/v1/completions", request);
        var (_, second) = await PostAsync("/v1/completions", request);
        Assert.Equal(0, first.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        int prompt = second.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
        int cached = second.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();
        Assert.True(cached >= _engine.BlockSize && cached < prompt, $"{cached} of {prompt} prompt tokens cached");
        Assert.Equal(first.GetProperty("choices")[0].GetProperty("text").GetString(), second.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task Sampling_WithASeed_IsReproducible_AndStopsEndTheText()
    {
        const string request = """{"prompt": "seeded", "max_tokens": 24, "temperature": 1.0, "top_k": 40, "seed": 1234, "ignore_eos": true}""";
        var (_, a) = await PostAsync("/v1/completions", request);
        var (_, b) = await PostAsync("/v1/completions", request);
        string text = a.GetProperty("choices")[0].GetProperty("text").GetString()!;
        Assert.Equal(text, b.GetProperty("choices")[0].GetProperty("text").GetString());
        var (_, other) = await PostAsync("/v1/completions", request.Replace("1234", "99"));
        Assert.NotEqual(text, other.GetProperty("choices")[0].GetProperty("text").GetString());

        // A stop string taken from the seeded text ends the completion just before it.
        Assert.True(text.Length >= 6, $"seeded text too short: '{text}'");
        string stop = text.Substring(3, 3);
        var (_, stopped) = await PostAsync("/v1/completions", request.Replace("\"ignore_eos\": true", $"\"ignore_eos\": true, \"stop\": {JsonSerializer.Serialize(stop)}"));
        var choice = stopped.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(text[..text.IndexOf(stop, StringComparison.Ordinal)], choice.GetProperty("text").GetString());
    }

    [Fact]
    public async Task TheOfficialOpenAiClient_ChatsAndStreams()
    {
        // The OpenAI .NET SDK pointed at the server: what C# services would use. The random tiny
        // model ends some conversations at once, so take the first one that yields text.
        string? user = null, want = null;
        int wantTokens = 0;
        foreach (string candidate in new[] { "tell a story", "hello there", "once upon a time", "what is two plus two", "abc", "the quick brown fox" })
        {
            var (_, raw) = await PostAsync("/v1/chat/completions",
                $$"""{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "{{candidate}}"}], "temperature": 0, "max_completion_tokens": 8}""");
            string content = raw.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
            if (content.Length == 0) continue;
            (user, want, wantTokens) = (candidate, content, raw.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
            break;
        }
        Assert.True(want is not null, "no candidate conversation produced text on the tiny model");

        var client = new OpenAI.Chat.ChatClient("tiny", new System.ClientModel.ApiKeyCredential("unused"),
            new OpenAI.OpenAIClientOptions { Endpoint = new Uri(_http.BaseAddress!, "/v1") });
        var options = new OpenAI.Chat.ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 };
        OpenAI.Chat.ChatMessage[] messages = [new OpenAI.Chat.SystemChatMessage("be brief"), new OpenAI.Chat.UserChatMessage(user)];
        var completion = (await client.CompleteChatAsync(messages, options)).Value;
        Assert.Equal(want, completion.Content[0].Text);
        Assert.Equal(wantTokens, completion.Usage.OutputTokenCount);

        var streamed = new StringBuilder();
        await foreach (var update in client.CompleteChatStreamingAsync(messages, options))
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
        Assert.Equal(want, streamed.ToString());
    }

    [Fact]
    public async Task ConcurrentCompletions_EqualTheirOneAtATimeResults()
    {
        string[] prompts = ["a", "the cat sat on", "once upon a time there", "zz top"];
        var replies = await Task.WhenAll(prompts.Select(p =>
            PostAsync("/v1/completions", $$"""{"prompt": "{{p}}", "max_tokens": 9, "temperature": 0}""")));
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(HttpStatusCode.OK, replies[i].Status);
            Assert.Equal(Greedy(prompts[i], 9).Text, replies[i].Body.GetProperty("choices")[0].GetProperty("text").GetString());
        }
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "temperature": -1}""", "temperature", "invalid_value")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "top_p": 1.5}""", "top_p", "invalid_value")]
    [InlineData("/v1/chat/completions", """{"messages": []}""", "messages", "missing_required_parameter")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "wizard", "content": "hi"}]}""", "messages[0].role", "unsupported_value")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "n": 2}""", "n", "unsupported_value")]
    [InlineData("/v1/completions", """{"prompt": "hi", "max_tokens": 100000}""", "max_tokens", "invalid_value")]
    [InlineData("/v1/completions", """{"prompt": "hi", "max_tokens": "ten"}""", "max_tokens", "invalid_type")]
    [InlineData("/v1/completions", """{"max_tokens": 4}""", "prompt", "missing_required_parameter")]
    [InlineData("/v1/completions", """{"prompt": "hi", "stop": [""]}""", "stop", "invalid_type")]
    [InlineData("/v1/completions", """{"prompt": "hi", "logit_bias": {"x": 1}}""", "logit_bias", "invalid_type")]
    [InlineData("/v1/completions", """{"prompt": "hi" """, null, "invalid_json")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}""", "response_format", "unsupported_value")]
    [InlineData("/v1/chat/completions", """{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}""", "tools", "unsupported_value")]
    [InlineData("/v1/completions", """{"prompt": "hi", "echo": true}""", "echo", "unsupported_value")]
    public async Task BadRequest_Is400NamingTheParameter_AndQueuesNothing(string path, string json, string? param, string code)
    {
        long steps = _engine.Stats.Steps;
        var (status, body) = await PostAsync(path, json);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = body.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        if (param is null) Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        else Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        Assert.Equal(steps, _engine.Stats.Steps);
    }

    [Fact]
    public async Task MaxTokensLimit_BoundsTheDefaultAndRefusesMore()
    {
        using var engine = new InferenceEngine(_model, _checkpoint.Tokenizer, new EngineOptions { MaxTokensLimit = 5 });
        await using var limited = new OpenAiServer(engine, new OpenAiServerOptions { ModelId = "tiny", Url = "http://127.0.0.1:0", ChatTemplate = ChatTemplates.ChatML });
        await limited.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(limited.Urls.First()) };
        using var chat = await http.PostAsync("/v1/chat/completions",
            new StringContent("""{"messages": [{"role": "user", "content": "hi"}], "ignore_eos": true}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        var usage = JsonDocument.Parse(await chat.Content.ReadAsStringAsync()).RootElement.GetProperty("usage");
        Assert.Equal(5, usage.GetProperty("completion_tokens").GetInt32());  // the default, bounded by the limit
        using var tooMany = await http.PostAsync("/v1/completions", new StringContent("""{"prompt": "hi", "max_tokens": 6}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.StatusCode);
        var error = JsonDocument.Parse(await tooMany.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("max_tokens", error.GetProperty("param").GetString());
        Assert.DoesNotContain("Parameter '", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task PromptOverTheContext_IsContextLengthExceeded()
    {
        string prompt = string.Concat(Enumerable.Repeat("word ", 400));
        var (status, body) = await PostAsync("/v1/completions", $$"""{"prompt": "{{prompt}}"}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("context_length_exceeded", body.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("prompt", body.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task ClientThatDisconnectsMidStream_LeavesNoBlocksInUse()
    {
        int total = _engine.Stats.KvBlocksTotal;
        using (var cts = new CancellationTokenSource())
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
            {
                Content = new StringContent("""{"prompt": "run on", "max_tokens": 200, "temperature": 0.8, "seed": 1, "stream": true}""", Encoding.UTF8, "application/json"),
            };
            using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            using var stream = await response.Content.ReadAsStreamAsync(cts.Token);
            var first = new byte[64];
            Assert.True(await stream.ReadAsync(first, cts.Token) > 0);
            cts.Cancel();
        }
        // Whether the engine saw the cancellation or the tiny model finished first, nothing may
        // stay allocated (cached prefix blocks count as free).
        for (int i = 0; i < 200 && _engine.Stats.KvBlocksUsed > 0; i++) await Task.Delay(25);
        Assert.Equal(0, _engine.Stats.KvBlocksUsed);
        Assert.Equal(total, _engine.Stats.KvBlocksTotal);
    }

    [Fact]
    public async Task ApiKey_IsRequiredOnTheApiButNotOnHealth()
    {
        var log = new StringWriter();
        await using var locked = new OpenAiServer(_engine, new OpenAiServerOptions { ModelId = "tiny", Url = "http://127.0.0.1:0", ApiKey = "s3cret", AccessLog = log });
        await locked.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(locked.Urls.First()) };
        using (var health = await http.GetAsync("/health")) Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        using (var anonymous = await http.GetAsync("/v1/models"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            Assert.Equal("invalid_api_key", JsonDocument.Parse(await anonymous.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        }
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "wrong");
        using (var wrong = await http.GetAsync("/metrics")) Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "s3cret");
        using (var right = await http.GetAsync("/v1/models")) Assert.Equal(HttpStatusCode.OK, right.StatusCode);
        // One access-log line per request, with its status.
        string[] lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        Assert.Contains("GET /v1/models 401", lines[1]);
        Assert.Contains("GET /v1/models 200", lines[3]);
    }

    [Fact]
    public async Task Chat_TheTemplateRefuses_Is400OnMessages()
    {
        await using var llama2 = new OpenAiServer(_engine, new OpenAiServerOptions { ModelId = "tiny", Url = "http://127.0.0.1:0", ChatTemplate = ChatTemplates.Llama2 });
        await llama2.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(llama2.Urls.First()) };
        using var response = await http.PostAsync("/v1/chat/completions",
            new StringContent("""{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("messages", error.GetProperty("param").GetString());
        Assert.Contains("alternate", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task MapOpenAiApi_AddsTheApiToYourOwnApplication_UnderAPrefix()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var app = builder.Build();
        app.MapGet("/", () => "my service");
        var api = app.MapGroup("/llm").MapOpenAiApi(_engine, new OpenAiServerOptions { ModelId = "tiny" });
        Assert.NotNull(api.ChatUnavailableReason);  // no template given, and the model has none
        await app.StartAsync();
        string address = ((IServer)app.Services.GetService(typeof(IServer))!).Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var http = new HttpClient { BaseAddress = new Uri(address) };
        Assert.Equal("my service", await http.GetStringAsync("/"));
        using var response = await http.PostAsync("/llm/v1/completions", new StringContent("""{"prompt": "hello world", "max_tokens": 5, "temperature": 0}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        string text = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
        Assert.Equal(Greedy("hello world", 5).Text, text);
        await app.StopAsync();
    }

    [Fact]
    public async Task Chat_WithoutAnyTemplate_IsRefusedWhileCompletionsWork()
    {
        await using var bare = new OpenAiServer(_engine, new OpenAiServerOptions { ModelId = "tiny", Url = "http://127.0.0.1:0" });
        Assert.NotNull(bare.ChatUnavailableReason);
        await bare.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(bare.Urls.First()) };
        using var chat = await http.PostAsync("/v1/chat/completions", new StringContent("""{"messages": [{"role": "user", "content": "hi"}]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, chat.StatusCode);
        var error = JsonDocument.Parse(await chat.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("chat_template_missing", error.GetProperty("code").GetString());
        Assert.Contains("chat template", error.GetProperty("message").GetString());
        using var completion = await http.PostAsync("/v1/completions", new StringContent("""{"prompt": "hi", "max_tokens": 2}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, completion.StatusCode);
    }
}
