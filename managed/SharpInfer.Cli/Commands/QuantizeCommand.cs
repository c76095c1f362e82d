// QuantizeCommand.cs: `sharpinfer quantize`: post-training quantization of a dense model into a
// Hugging Face folder the runtime loads (quant_method "sharpinfer"; see ModelQuantizer).
using System.CommandLine;
using System.Text.Json;
using SharpInfer.Quantization;
using Spectre.Console;

namespace SharpInfer.Cli.Commands;

internal static class QuantizeCommand
{
    public const string MethodHelp =
        "rtn: round to nearest per group. aware: activation-aware; the --calib text runs through the f32 model, and for " +
        "each group of linears sharing an input (q/k/v, o, gate/up, down) a per-input-channel scale s is searched over " +
        "alpha in 0, 0.05, ..., 1 by the error of the layer outputs on those activations, then folded in exactly (weight " +
        "columns * s, the preceding RMSNorm weight or v_proj/up_proj rows / s). For int8/int4 the scale is AWQ's " +
        "s = mean|x|^alpha, which gives the channels that carry large activations finer quantization steps (weight-only " +
        "error is dominated by those channels). For w8a8 it is SmoothQuant's migration s = max|x|^alpha / max|w|^(1-alpha): " +
        "the activations are also quantized per token, so their outlier channels are moved into the weights, which " +
        "per-row int8 absorbs better. alpha = 0 is plain RTN, so the search never does worse than RTN on its calibration data.";

    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = new Option<string>("--model", "-m") { Description = "Dense model to quantize: a .gguf file or a Hugging Face folder (f32/f16/bf16).", Required = true };
        var output = new Option<string>("--out", "-o") { Description = "Folder to write (model.safetensors, config.json, tokenizer).", Required = true };
        var scheme = new Option<string>("--scheme")
        {
            Description = "int8: int8 symmetric weights, f32 activations (W8A16). int4: uint4 affine weights, scale + offset per group (W4A16). " +
                          "w8a8: int8 weights and int8 per-token activations.",
            Required = true,
        };
        scheme.AcceptOnlyFromAmong("int8", "int4", "w8a8");
        var group = new Option<int>("--group")
        {
            Description = "Input columns per group (one scale, and for int4 one offset, each); 0 = one group per row (per-channel). " +
                          "A tensor whose input size is not a multiple keeps a shorter last group (ragged), reported in the output.",
            DefaultValueFactory = _ => 128,
        };
        var method = new Option<string>("--method") { Description = MethodHelp, DefaultValueFactory = _ => "rtn" };
        method.AcceptOnlyFromAmong("rtn", "aware");
        var calib = new Option<string?>("--calib") { Description = "Calibration text file (plain text) for --method aware." };
        var calibTokens = new Option<int>("--calib-tokens") { Description = "Token rows of calibration activations per layer (the scale search cost grows with it).", DefaultValueFactory = _ => 2048 };
        var threads = new Option<int>("--threads", "-t") { Description = "CPU threads for calibration (0 = all).", DefaultValueFactory = _ => 0 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object describing the result." };

        var command = new Command("quantize",
            "Quantize a model's linear layers (int8, int4, w8a8) into a checkpoint SharpInfer loads. Embeddings, norms and the LM head stay float.");
        foreach (Option option in new Option[] { model, output, scheme, group, method, calib, calibTokens, threads, json }) command.Options.Add(option);

        command.SetAction(parse =>
        {
            try
            {
                string? calibPath = parse.GetValue(calib);
                var options = new QuantizeOptions
                {
                    Scheme = parse.GetValue(scheme) switch { "int8" => QuantScheme.Int8, "w8a8" => QuantScheme.W8A8, _ => QuantScheme.Int4 },
                    GroupSize = parse.GetValue(group),
                    Method = parse.GetValue(method) == "aware" ? QuantMethod.Aware : QuantMethod.Rtn,
                    CalibrationText = calibPath is null ? null : File.ReadAllText(calibPath),
                    CalibrationTokens = parse.GetValue(calibTokens),
                    Threads = parse.GetValue(threads),
                };
                if (options.Method == QuantMethod.Rtn && calibPath is not null)
                    stderr.WriteLine("note: --calib is only used by --method aware; ignoring it");
                options.Validate();

                string outDir = parse.GetValue(output)!;
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stderr) });
                QuantizeResult? result = null;
                console.Progress().AutoClear(true).HideCompleted(true).Start(ctx =>
                {
                    var tasks = new Dictionary<string, ProgressTask>();
                    result = ModelQuantizer.Run(parse.GetValue(model)!, outDir, options, (stage, done, total) =>
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

    private static void Print(QuantizeResult result, QuantizeOptions options, bool json, TextWriter stdout)
    {
        if (json)
        {
            CliJson.WriteObject(stdout, w =>
            {
                w.WriteString("out", result.OutputDirectory);
                w.WriteString("scheme", options.Scheme.Name());
                w.WriteString("method", options.Method.Name());
                w.WriteNumber("group_size", options.GroupSize);
                w.WriteNumber("bytes", result.OutputBytes);
                w.WriteNumber("calibration_tokens", result.CalibrationTokens);
                w.WriteStartArray("tensors");
                foreach (var t in result.Tensors)
                {
                    w.WriteStartObject();
                    w.WriteString("name", t.Name);
                    w.WriteString("format", t.Format.Name());
                    w.WriteNumber("group_size", t.GroupSize);
                    w.WriteString("activations", t.Activations.Name());
                    w.WriteBoolean("ragged", t.IsRagged);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteStartArray("searches");
                foreach (var s in result.Searches)
                {
                    w.WriteStartObject();
                    w.WriteString("group", s.Group);
                    w.WriteString("folded_into", s.FoldedInto);
                    w.WriteNumber("alpha", s.Alpha);
                    w.WriteNumber("error", s.Error);
                    w.WriteNumber("rtn_error", s.RtnError);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteStartArray("notes");
                foreach (string note in result.Notes) w.WriteStringValue(note);
                w.WriteEndArray();
            });
            return;
        }

        stdout.WriteLine($"wrote {result.OutputDirectory} ({result.OutputBytes / 1e6:F2} MB of tensors): {options.Scheme.Name()}, {options.Method.Name()}");
        foreach (var format in result.Tensors.GroupBy(t => (t.Format, t.GroupSize >= t.Columns ? 0 : t.GroupSize, t.Activations)))
            stdout.WriteLine($"  {format.Count(),4} tensors {format.Key.Format.Name()} {(format.Key.Item2 == 0 ? "per-channel" : $"g{format.Key.Item2}")}" +
                             $"{(format.Key.Activations == QuantActivations.Int8 ? ", int8 activations" : "")}");
        foreach (string note in result.Notes) stdout.WriteLine($"  note: {note}");
        if (result.Searches.Count > 0)
        {
            stdout.WriteLine($"  scale search on {result.CalibrationTokens} calibration tokens (output error at chosen alpha / at alpha 0 = RTN):");
            foreach (var s in result.Searches)
                stdout.WriteLine($"    {s.Group,-20} alpha {s.Alpha:F2}  error {s.Error:G4} / {s.RtnError:G4}  (1/s folded into {s.FoldedInto})");
        }
    }
}
