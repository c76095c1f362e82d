// ServeCommand.cs: `sharpinfer serve`: the OpenAI-compatible HTTP API (SharpInfer.Server) over
// one model and one batching engine, until Ctrl+C.
using System.CommandLine;
using SharpInfer.Chat;
using SharpInfer.Engine;
using SharpInfer.Llama;
using SharpInfer.Server;

namespace SharpInfer.Cli.Commands;

internal static class ServeCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("serve",
            "Serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /health), " +
            "every request batched by the engine (continuous batching, prefix caching); streaming with \"stream\": true.");
        var common = new CommonOptions();
        common.AddTo(command);
        var host = new Option<string>("--host") { Description = "Address to listen on (0.0.0.0: every interface).", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port", "-p") { Description = "Port to listen on (0: any free port).", DefaultValueFactory = _ => 8000 };
        var template = new Option<string?>("--chat-template")
        {
            Description = "Chat template for /v1/chat/completions when the model has none (or to override it): a Jinja file, " +
                          "or one of chatml, llama2, zephyr.",
        };
        var modelId = new Option<string?>("--model-id") { Description = "The model id clients see (default: the model file's name)." };
        var kvBlocks = new Option<int>("--kv-blocks") { Description = "Blocks in the KV pool (0: enough for four full-context sequences).", DefaultValueFactory = _ => 0 };
        var apiKey = new Option<string?>("--api-key")
        {
            Description = "Require \"Authorization: Bearer KEY\" on /v1 and /metrics (default: the SHARPINFER_API_KEY environment variable; none: open).",
        };
        var kvCache = new Option<KvCacheDType>("--kv-cache")
        {
            Description = "KV cache element type: f32 (exact), f16 or bf16 (half the memory), int8 (a quarter, per-token scales).",
            DefaultValueFactory = _ => KvCacheDType.F32,
        };
        var maxBatchTokens = new Option<int>("--max-batch-tokens")
        {
            Description = "Most tokens one engine step computes (decode rows plus prefill chunks; 0: the model's batch size). " +
                          "Smaller keeps inter-token latency low while long prompts prefill.",
            DefaultValueFactory = _ => 0,
        };
        var maxTokensLimit = new Option<int>("--max-tokens-limit")
        {
            Description = "Largest max_tokens a request may ask for (0: only the context bounds it).",
            DefaultValueFactory = _ => 0,
        };
        foreach (Option option in new Option[] { host, port, template, modelId, kvBlocks, kvCache, maxBatchTokens, maxTokensLimit, apiKey })
            command.Options.Add(option);

        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                int portNumber = parse.GetValue(port);
                if (portNumber is < 0 or > 65535) throw new ArgumentException($"--port must be 0..65535 (got {portNumber})");
                string? chatTemplate = ResolveTemplate(parse.GetValue(template));  // before the (slow) load
                using var loaded = common.Load(parse, stderr);
                var engineOptions = new EngineOptions
                {
                    KvBlocks = parse.GetValue(kvBlocks),
                    KvCacheDType = parse.GetValue(kvCache),
                    MaxBatchTokens = parse.GetValue(maxBatchTokens),
                    MaxTokensLimit = parse.GetValue(maxTokensLimit),
                };
                using var engine = new InferenceEngine(loaded.Model, loaded.Checkpoint.Tokenizer, engineOptions);
                string id = parse.GetValue(modelId) ?? Path.GetFileNameWithoutExtension(loaded.Checkpoint.SourcePath.TrimEnd('/', '\\'));
                await using var server = new OpenAiServer(engine, new OpenAiServerOptions
                {
                    ModelId = id,
                    ModelChatTemplate = loaded.Checkpoint.ChatTemplate,
                    ChatTemplate = chatTemplate,
                    Url = $"http://{parse.GetValue(host)}:{portNumber}",
                    ApiKey = parse.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("SHARPINFER_API_KEY"),
                    AccessLog = stderr,
                });
                await server.StartAsync(cancellationToken);
                if (parse.GetValue(common.Json))
                {
                    // One line a script can read to find the server (e.g. the port chosen for --port 0).
                    CliJson.WriteObject(stdout, w =>
                    {
                        w.WriteString("model", id);
                        w.WriteStartArray("urls");
                        foreach (string url in server.Urls) w.WriteStringValue(url);
                        w.WriteEndArray();
                        w.WriteNumber("context", engine.MaxContext);
                        w.WriteNumber("kv_blocks", engine.KvBlocks);
                        w.WriteNumber("block_size", engine.BlockSize);
                        w.WriteBoolean("chat", server.ChatUnavailableReason is null);
                    }, indented: false);
                }
                else
                {
                    stdout.WriteLine($"serving {id} ({engine.KvBlocks} KV blocks of {engine.BlockSize} tokens in {parse.GetValue(kvCache).ToString().ToLowerInvariant()}, context {engine.MaxContext}) " +
                                     $"on {string.Join(", ", server.Urls)}");
                    stdout.WriteLine("  POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health; Ctrl+C stops");
                }
                if (server.ChatUnavailableReason is { } why) stderr.WriteLine($"sharpinfer: chat completions are off: {why}");
                stdout.Flush();
                try
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                }
                return ExitCodes.Ok;
            }
            catch (Exception e)
            {
                return CliApp.Report(e, stderr);
            }
        });
        return command;
    }

    // A file's text, or a built-in template by name.
    private static string? ResolveTemplate(string? value) => value?.ToLowerInvariant() switch
    {
        null => null,
        "chatml" => ChatTemplates.ChatML,
        "llama2" => ChatTemplates.Llama2,
        "zephyr" => ChatTemplates.Zephyr,
        _ when File.Exists(value) => File.ReadAllText(value),
        _ => throw new ArgumentException($"--chat-template: no file {value} (or use chatml, llama2, zephyr)"),
    };
}
