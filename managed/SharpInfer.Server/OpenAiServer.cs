// OpenAiServer.cs: the OpenAI-compatible HTTP API (OpenAiApi) hosted on its own Kestrel
// server, as `sharpinfer serve` runs it: an optional access log and API key in front, and a JSON
// 404 for unknown routes.
using System.Diagnostics;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SharpInfer.Engine;

namespace SharpInfer.Server;

public sealed record OpenAiServerOptions
{
    /// <summary>The id /v1/models lists and responses carry.</summary>
    public string ModelId { get; init; } = "sharpinfer";
    /// <summary>The model's own chat template (GGUF tokenizer.chat_template or tokenizer_config.json).</summary>
    public string? ModelChatTemplate { get; init; }
    /// <summary>A template to use instead of the model's (required for chat when the model has none).</summary>
    public string? ChatTemplate { get; init; }
    /// <summary>Where to listen, e.g. http://127.0.0.1:8000 (port 0: any free port).</summary>
    public string Url { get; init; } = "http://127.0.0.1:8000";
    /// <summary>Largest request body accepted.</summary>
    public long MaxRequestBytes { get; init; } = 16 << 20;
    /// <summary>When set, every /v1 request must send "Authorization: Bearer KEY" (else 401).</summary>
    public string? ApiKey { get; init; }
    /// <summary>When set, one line per request: method, path, status, milliseconds.</summary>
    public TextWriter? AccessLog { get; init; }
}

public sealed class OpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly OpenAiApi _api;

    public OpenAiServer(InferenceEngine engine, OpenAiServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(engine);
        options ??= new OpenAiServerOptions();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(options.Url);
        builder.Logging.ClearProviders();
        _app = builder.Build();
        if (options.AccessLog is { } log)
        {
            var logLock = new object();
            _app.Use(async (context, next) =>
            {
                long start = Stopwatch.GetTimestamp();
                try
                {
                    await next(context);
                }
                finally
                {
                    string line = $"{DateTime.UtcNow:HH:mm:ss} {context.Request.Method} {context.Request.Path} {context.Response.StatusCode} " +
                                  $"{Stopwatch.GetElapsedTime(start).TotalMilliseconds:F0} ms{(context.RequestAborted.IsCancellationRequested ? " (client gone)" : "")}";
                    lock (logLock) log.WriteLine(line);
                }
            });
        }
        if (options.ApiKey is { Length: > 0 } key)
        {
            byte[] expected = Encoding.UTF8.GetBytes("Bearer " + key);
            _app.Use(async (context, next) =>
            {
                if (context.Request.Path.StartsWithSegments("/v1") || context.Request.Path.StartsWithSegments("/metrics"))
                {
                    byte[] given = Encoding.UTF8.GetBytes(context.Request.Headers.Authorization.ToString());
                    if (!System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(given, expected))
                    {
                        await OpenAiApi.WriteErrorAsync(context, 401, "missing or wrong API key (send \"Authorization: Bearer KEY\")", "authentication_error", null, "invalid_api_key");
                        return;
                    }
                }
                await next(context);
            });
        }
        _api = _app.MapOpenAiApi(engine, options);
        _app.MapFallback(context => OpenAiApi.WriteErrorAsync(context, 404, $"no route {context.Request.Method} {context.Request.Path}", "not_found_error", null, "not_found"));
    }

    /// <summary>Chat is unavailable (no template anywhere): why, else null.</summary>
    public string? ChatUnavailableReason => _api.ChatUnavailableReason;

    /// <summary>The addresses the server listens on (after <see cref="StartAsync"/>; port 0 resolved).</summary>
    public IReadOnlyCollection<string> Urls =>
        _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [];

    public Task StartAsync(CancellationToken cancellationToken = default) => _app.StartAsync(cancellationToken);

    /// <summary>Serves until <paramref name="cancellationToken"/> is cancelled (or the process is told to stop).</summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        await _app.StartAsync(cancellationToken);
        await _app.WaitForShutdownAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _api.Dispose();
    }
}
