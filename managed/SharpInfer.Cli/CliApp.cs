// CliApp.cs: builds the command tree and maps failures to readable messages and exit codes.
using System.CommandLine;
using SharpInfer.Cli.Commands;
using SharpInfer.Interop;
using SharpInfer.Llama;
using SharpInfer.Models;

namespace SharpInfer.Cli;

public static class CliApp
{
    /// <summary>Runs the CLI with the given output writers (tests pass their own).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand(
            "SharpInfer: LLM inference for .NET on hand-written CPU and CUDA kernels.\n" +
            "Models: GGUF files (F32/F16/BF16, Q8_0/Q4_0/Q4_1/Q4_K/Q6_K) or Hugging Face folders (config.json + safetensors,\n" +
            "F32/F16/BF16, AWQ/GPTQ int4, SharpInfer-quantized or -pruned), Llama family (llama, mistral, qwen2).");
        root.Subcommands.Add(GenerateCommand.Create(stdout, stderr));
        root.Subcommands.Add(BenchCommand.Create(stdout, stderr));
        root.Subcommands.Add(MakeModelCommand.Create(stdout, stderr));
        root.Subcommands.Add(InfoCommand.Create(stdout, stderr));
        root.Subcommands.Add(QuantizeCommand.Create(stdout, stderr));
        root.Subcommands.Add(PruneCommand.Create(stdout, stderr));
        root.Subcommands.Add(EvalCommand.Create(stdout, stderr));
        root.Subcommands.Add(ServeCommand.Create(stdout, stderr));

        var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        try
        {
            var parse = root.Parse(args);
            // A bad command line is bad input (exit 2), like a bad model file, not a crash (1).
            if (args.Length == 0)
            {
                root.Parse(["--help"]).Invoke(config);
                return ExitCodes.BadInput;
            }
            if (parse.Errors.Count > 0)
            {
                foreach (var error in parse.Errors) stderr.WriteLine($"sharpinfer: {error.Message}");
                stderr.WriteLine("Run 'sharpinfer --help' or 'sharpinfer <command> --help' for usage.");
                return ExitCodes.BadInput;
            }
            return parse.Invoke(config);
        }
        catch (Exception e)
        {
            return Report(e, stderr);
        }
    }

    /// <summary>Prints one readable line (no stack trace) for expected failures.</summary>
    internal static int Report(Exception e, TextWriter stderr)
    {
        (string kind, int code) = e switch
        {
            ModelFormatException => ("model error", ExitCodes.BadInput),
            ContextOverflowException => ("prompt too long", ExitCodes.BadInput),
            ArgumentException => ("invalid argument", ExitCodes.BadInput),
            FileNotFoundException or DirectoryNotFoundException => ("not found", ExitCodes.BadInput),
            UnauthorizedAccessException or IOException => ("I/O error", ExitCodes.BadInput),
            NativeLibraryException => ("native library", ExitCodes.RuntimeUnavailable),
            NoDeviceException or BackendNotCompiledException or UnsupportedOperationException => ("backend", ExitCodes.RuntimeUnavailable),
            SharpInferException => ("runtime error", ExitCodes.RuntimeUnavailable),
            _ => ("internal error", ExitCodes.InternalError),
        };
        stderr.WriteLine($"sharpinfer: {kind}: {e.Message}");
        if (code == ExitCodes.InternalError) stderr.WriteLine(e.ToString());
        return code;
    }
}
