// CommonOptions.cs: options shared by the commands that load a model, and loading itself.
using System.CommandLine;
using SharpInfer.Backends;
using SharpInfer.Llama;
using SharpInfer.Models;
using SharpInfer.Quantization;

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
    public readonly Option<bool> Verbose = new("--verbose", "-v")
    {
        Description = "Report load-time decisions on stderr: for a pruned model, where each group of sparse weights runs " +
                      "the sparse kernel and where a dense copy (timed at 1, 4, 16 and 64 rows on this backend).",
    };

    public readonly Option<string> Activations = new("--activations")
    {
        Description = "How quantized weights meet the activations: auto (GGUF Q8_0/Q4_0/Q4_1/Q4_K quantize them to int8 per " +
                      "32 columns, as llama.cpp computes these types, which runs the integer kernels; other checkpoints as " +
                      "stored) or float (f32 activations for every quantized weight: the exact dequantized product, slower).",
        DefaultValueFactory = _ => "auto",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Model);
        command.Options.Add(Backend);
        command.Options.Add(Threads);
        command.Options.Add(Json);
        command.Options.Add(Verbose);
        Activations.AcceptOnlyFromAmong("auto", "float");
        command.Options.Add(Activations);
    }

    /// <summary>--activations float: every quantized weight multiplies f32 activations.</summary>
    private static int UseFloatActivations(ModelCheckpoint checkpoint)
    {
        int changed = 0;
        foreach (string name in checkpoint.TensorNames)
        {
            if (checkpoint.GetTensor(name).Quantized is { } q && q.Activations != QuantActivations.Float)
            {
                q.SetActivations(QuantActivations.Float);
                changed++;
            }
        }
        return changed;
    }

    /// <summary>One line per group of sparse weights: which kernel runs at which batch size, and why.</summary>
    internal static void ReportSparseKernels(LlamaModel model, TextWriter log)
    {
        if (model.SparseKernelChoices.Count == 0) return;
        log.WriteLine($"sparse kernels ({model.SparseKernelChoices.Sum(c => c.Weights.Count)} sparse weights; m = rows in a batch):");
        foreach (var choice in model.SparseKernelChoices) log.WriteLine($"  {choice.Describe()}");
    }

    /// <summary>Opens the model named on the command line (or the default one).</summary>
    public LoadedModel Load(ParseResult parse, TextWriter log)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        string path = parse.GetValue(Model) ?? DefaultModel.Resolve(log);
        int threads = parse.GetValue(Threads);
        if (threads < 0) throw new ArgumentException($"--threads must be >= 0 (got {threads})");
        var checkpoint = ModelLoader.Load(path);
        try
        {
            if (parse.GetValue(Activations) == "float")
            {
                int changed = UseFloatActivations(checkpoint);
                if (parse.GetValue(Verbose)) log.WriteLine($"activations: f32 for {changed} quantized weights that would quantize them");
            }
            else if (parse.GetValue(Verbose))
            {
                int blocks = checkpoint.TensorNames.Count(n => checkpoint.GetTensor(n).Quantized?.Activations == QuantActivations.Int8Block32);
                if (blocks > 0) log.WriteLine($"activations: int8 per 32 columns for {blocks} quantized weights (as llama.cpp; --activations float for f32)");
            }
            var backend = ComputeBackend.Open(parse.GetValue(Backend), threads);
            LlamaModel model;
            try
            {
                model = new LlamaModel(checkpoint, backend);
            }
            catch
            {
                backend.Dispose();
                throw;
            }
            if (parse.GetValue(Verbose)) ReportSparseKernels(model, log);
            return new LoadedModel(checkpoint, backend, model, System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }
}

/// <summary>A checkpoint, the backend it runs on and the model runner over both; LoadSeconds is
/// what loading took (map, check, repack, upload).</summary>
internal sealed record LoadedModel(ModelCheckpoint Checkpoint, ComputeBackend Backend, LlamaModel Model, double LoadSeconds) : IDisposable
{
    public void Dispose()
    {
        Model.Dispose();
        Backend.Dispose();
        Checkpoint.Dispose();
    }
}
