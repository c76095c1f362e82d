// PruneCommand.cs: `sharpinfer prune`: magnitude or Wanda pruning of a dense model's linear layers
// into 2:4 or unstructured (bitmask) sparse weights, written as a Hugging Face folder the runtime
// loads (a sparsity_config section in config.json; see ModelPruner).
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using SharpInfer.Sparsity;
using Spectre.Console;

namespace SharpInfer.Cli.Commands;

internal static class PruneCommand
{
    public const string PatternHelp =
        "2:4: in every 4 consecutive input columns of a row keep the 2 best weights (50% sparse; the layout sparse tensor " +
        "cores take). unstructured: keep the best (1 - S) of each output row anywhere (--sparsity S), stored as a bitmask.";

    public const string MethodHelp =
        "magnitude: a weight's score is |w|. wanda: |w| times the L2 norm of its input channel's activations, collected by " +
        "running the dense model on the --calib text (so a small weight on a loud channel can outrank a large one on a quiet " +
        "channel). Either way scores are compared within each output row.";

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = new Option<string>("--model", "-m") { Description = "Dense model to prune: a .gguf file or a Hugging Face folder (f32/f16/bf16).", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "Folder to write (model.safetensors, config.json, tokenizer).", Required = true };
        var pattern = new Option<string>("--pattern") { Description = PatternHelp, Required = true };
        pattern.AcceptOnlyFromAmong("2:4", "unstructured");
        var sparsity = new Option<string?>("--sparsity")
        {
            Description = "Fraction of each row's weights set to zero, in (0, 1), for --pattern unstructured (e.g. 0.5 or 70%). 2:4 is always 0.5.",
        };
        var method = new Option<string>("--method") { Description = MethodHelp, DefaultValueFactory = _ => "magnitude" };
        method.AcceptOnlyFromAmong("magnitude", "wanda");
        var calib = new Option<string?>("--calib") { Description = "Calibration text file (plain text) for --method wanda." };
        var calibTokens = new Option<int>("--calib-tokens") { Description = "Most calibration tokens run through the model.", DefaultValueFactory = _ => 2048 };
        var threads = new Option<int>("--threads", "-t") { Description = "CPU threads for calibration (0 = all).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object describing the result." };

        var command = new Command("prune",
            "Prune a model's linear layers (q, k, v, o, gate, up, down of every block) to 2:4 or unstructured sparsity and write a " +
            "checkpoint SharpInfer loads; the runner then uses the sparse kernels where they measure faster than dense " +
            "(see --verbose of generate/bench). Embeddings, norms and the LM head stay dense.");
        foreach (Option option in new Option[] { model, output, pattern, sparsity, method, calib, calibTokens, threads, json }) command.Options.Add(option);

        command.SetAction(parse =>
        {
            try
            {
                var chosenPattern = parse.GetValue(pattern) == "2:4" ? SparsityPattern.TwoFour : SparsityPattern.Unstructured;
                double s = ParseSparsity(parse.GetValue(sparsity)) ?? (chosenPattern == SparsityPattern.TwoFour ? 0.5
                    : throw new ArgumentException("--pattern unstructured needs --sparsity S (the fraction of each row set to zero, e.g. 0.5)"));
                string? calibPath = parse.GetValue(calib);
                var options = new PruneOptions
                {
                    Pattern = chosenPattern,
                    Sparsity = s,
                    Method = parse.GetValue(method) == "wanda" ? PruneMethod.Wanda : PruneMethod.Magnitude,
                    CalibrationText = calibPath is null ? null : File.ReadAllText(calibPath),
                    CalibrationTokens = parse.GetValue(calibTokens),
                    Threads = parse.GetValue(threads),
                };
                if (options.Method == PruneMethod.Magnitude && calibPath is not null)
                    stderr.WriteLine("note: --calib is only used by --method wanda; ignoring it");
                options.Validate();

                string outDir = parse.GetValue(output)!;
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stderr) });
                PruneResult? result = null;
                console.Progress().AutoClear(true).HideCompleted(true).Start(ctx =>
                {
                    var tasks = new Dictionary<string, ProgressTask>();
                    result = ModelPruner.Run(parse.GetValue(model)!, outDir, options, (stage, done, total) =>
                    {
                        if (!tasks.TryGetValue(stage, out var task)) tasks[stage] = task = ctx.AddTask(stage, maxValue: Math.Max(total, 1));
                        task.Value = done;
                    }, message => stderr.WriteLine(message));
                    foreach (var task in tasks.Values) task.StopTask();
                });
                Print(result!, options, parse.GetValue(json), stdout);
                return ExitCodes.Ok;
            }
            catch (Exception e)
            {
                return CliApp.Report(e, stderr);
            }
        });
        return command;
    }

    /// <summary>"0.7", "70%" or null.</summary>
    private static double? ParseSparsity(string? text)
    {
        if (text is null) return null;
        string t = text.Trim();
        bool percent = t.EndsWith('%');
        if (percent) t = t[..^1];
        if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
            throw new ArgumentException($"--sparsity '{text}' is not a number (e.g. 0.5 or 50%)");
        return percent ? value / 100 : value;
    }

    private static void Print(PruneResult result, PruneOptions options, bool json, TextWriter stdout)
    {
        long packed = result.Tensors.Sum(t => t.PackedBytes), dense = result.Tensors.Sum(t => t.DenseBytes);
        long nonZeros = result.Tensors.Sum(t => t.NonZeros), total = result.Tensors.Sum(t => (long)t.Rows * t.Columns);
        double achieved = total == 0 ? 0 : 1 - (double)nonZeros / total;
        if (json)
        {
            CliJson.WriteObject(stdout, w =>
            {
                w.WriteString("out", result.OutputDirectory);
                w.WriteString("pattern", options.Pattern.Name());
                w.WriteNumber("sparsity", options.Sparsity);
                w.WriteNumber("achieved_sparsity", Math.Round(achieved, 6));
                w.WriteString("method", options.Method.Name());
                w.WriteNumber("calibration_tokens", result.CalibrationTokens);
                w.WriteNumber("bytes", result.OutputBytes);
                w.WriteNumber("pruned_packed_bytes", packed);
                w.WriteNumber("pruned_dense_bytes", dense);
                w.WriteStartArray("tensors");
                foreach (var t in result.Tensors)
                {
                    w.WriteStartObject();
                    w.WriteString("name", t.Name);
                    w.WriteString("format", t.Format.Name());
                    w.WriteStartArray("shape");
                    w.WriteNumberValue(t.Rows);
                    w.WriteNumberValue(t.Columns);
                    w.WriteEndArray();
                    w.WriteNumber("nonzeros", t.NonZeros);
                    w.WriteNumber("sparsity", Math.Round(t.Sparsity, 6));
                    w.WriteNumber("packed_bytes", t.PackedBytes);
                    w.WriteNumber("dense_bytes", t.DenseBytes);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteStartArray("notes");
                foreach (string note in result.Notes) w.WriteStringValue(note);
                w.WriteEndArray();
            });
            return;
        }
        stdout.WriteLine($"wrote {result.OutputDirectory} ({result.OutputBytes / 1e6:F2} MB of tensors): {options.Pattern.Name()}" +
                         $"{(options.Pattern == SparsityPattern.Unstructured ? $" {100 * options.Sparsity:F0}%" : "")}, {options.Method.Name()}" +
                         (options.Method == PruneMethod.Wanda ? $" ({result.CalibrationTokens} calibration tokens)" : ""));
        stdout.WriteLine($"  {result.Tensors.Count} tensors pruned to {100 * achieved:F1}% zeros; packed {packed / 1e6:F2} MB vs {dense / 1e6:F2} MB dense ({(double)packed / Math.Max(1, dense):F2}x)");
        foreach (string note in result.Notes) stdout.WriteLine($"  note: {note}");
    }
}
