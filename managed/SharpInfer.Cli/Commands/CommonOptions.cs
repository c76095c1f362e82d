// CommonOptions.cs: options shared by the commands that load a model, and loading itself.
using System.CommandLine;
using SharpInfer.Backends;
using SharpInfer.Llama;
using SharpInfer.Models;

namespace SharpInfer.Cli.Commands;

internal sealed class CommonOptions
{
    public readonly Option<string?> Model = new("--model", "-m")
    {
        Description = "A .gguf file or a Hugging Face folder (config.json + *.safetensors + tokenizer.model). " +
                      "Default: the stories260K test model when ../shared/models is present, else a small model SharpInfer generates.",
    };
    public readonly Option<BackendKind> Backend = new("--backend")
    {
        Description = "Kernels to run on: cpu (SIMD + threads), ref (naive oracle, slow) or cuda.",
        DefaultValueFactory = _ => BackendKind.Cpu,
    };
    public readonly Option<int> Threads = new("--threads", "-t")
    {
        Description = "CPU threads (0 = all hardware threads).",
        DefaultValueFactory = _ => 0,
    };
    public readonly Option<bool> Json = new("--json")
    {
        Description = "Print one JSON object instead of human-readable output.",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Model);
        command.Options.Add(Backend);
        command.Options.Add(Threads);
        command.Options.Add(Json);
    }

    /// <summary>Opens the model named on the command line (or the default one).</summary>
    public LoadedModel Load(ParseResult parse, TextWriter log)
    {
        string path = parse.GetValue(Model) ?? DefaultModel.Resolve(log);
        int threads = parse.GetValue(Threads);
        if (threads < 0) throw new ArgumentException($"--threads must be >= 0 (got {threads})");
        var checkpoint = ModelLoader.Load(path);
        try
        {
            var backend = ComputeBackend.Open(parse.GetValue(Backend), threads);
            return new LoadedModel(checkpoint, backend, new LlamaModel(checkpoint, backend));
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }
}

/// <summary>A checkpoint, the backend it runs on and the model runner over both.</summary>
internal sealed record LoadedModel(ModelCheckpoint Checkpoint, ComputeBackend Backend, LlamaModel Model) : IDisposable
{
    public void Dispose()
    {
        Model.Dispose();
        Backend.Dispose();
        Checkpoint.Dispose();
    }
}
