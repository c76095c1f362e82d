// MakeModelCommand.cs: `sharpinfer make-model`: write a random-weight Llama GGUF with real
// model shapes, for benchmarks and tests on machines without downloaded models.
using System.CommandLine;
using SharpInfer.Models;
using SharpInfer.Models.Gguf;
using Spectre.Console;

namespace SharpInfer.Cli.Commands;

internal static class MakeModelCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var output = new Option<string>("--out", "-o") { Description = "GGUF file to write.", Required = true };
        var shape = new Option<string>("--shape")
        {
            Description = "Model dimensions: tinyllama-1.1b (22 layers, hidden 2048, vocab 32000), llama-7b-layer (one block of " +
                          "Llama-2-7B: hidden 4096, ffn 11008, 32 heads of 128; kernel-level figures at 7B sizes) or tiny (2 layers, hidden 64).",
            DefaultValueFactory = _ => "tinyllama-1.1b",
        };
        shape.AcceptOnlyFromAmong("tinyllama-1.1b", "llama-7b-layer", "tiny");
        var dtype = new Option<string>("--dtype")
        {
            Description = "Storage of the weight matrices: f32, f16, bf16, q8_0 or q4_0 (GGUF block layouts).",
            DefaultValueFactory = _ => "f16",
        };
        dtype.AcceptOnlyFromAmong("f32", "f16", "bf16", "q8_0", "q4_0");
        var seed = new Option<int>("--seed") { Description = "Seed of the random weights.", DefaultValueFactory = _ => 1 };
        var tokenizerFrom = new Option<string?>("--tokenizer-from")
        {
            Description = "Take the vocabulary from this model (GGUF or HF folder) instead of a built-in byte-level one.",
        };

        var command = new Command("make-model", "Write a random-weight Llama-shaped GGUF model (for benchmarks).");
        foreach (Option option in new Option[] { output, shape, dtype, seed, tokenizerFrom }) command.Options.Add(option);
        command.SetAction(parse =>
        {
            try
            {
                string path = parse.GetValue(output)!;
                var config = parse.GetValue(shape) switch
                {
                    "tiny" => SyntheticModel.Tiny,
                    "llama-7b-layer" => SyntheticModel.Llama7BLayer,
                    _ => SyntheticModel.TinyLlama1B,
                };
                var type = parse.GetValue(dtype) switch
                {
                    "f32" => GgmlType.F32,
                    "bf16" => GgmlType.BF16,
                    "q8_0" => GgmlType.Q8_0,
                    "q4_0" => GgmlType.Q4_0,
                    _ => GgmlType.F16,
                };
                using var source = parse.GetValue(tokenizerFrom) is { } from ? ModelLoader.Load(from) : null;
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stderr) });
                console.Status().Start($"writing {path} ({config.NumLayers} layers, hidden {config.HiddenSize}, {type})", _ =>
                    SyntheticModel.Write(path, config, type, parse.GetValue(seed), source?.Tokenizer));
                stdout.WriteLine($"wrote {path} ({new FileInfo(path).Length / 1e6:F1} MB)");
                return ExitCodes.Ok;
            }
            catch (Exception e)
            {
                return CliApp.Report(e, stderr);
            }
        });
        return command;
    }
}
