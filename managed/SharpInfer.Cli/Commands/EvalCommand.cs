// EvalCommand.cs: `sharpinfer eval`: perplexity of a model on a text and, against a reference
// model, mean KL divergence and top-1 agreement per token (as llama.cpp's perplexity tool reports).
using System.CommandLine;
using System.Text.Json;
using SharpInfer.Llama;
using SharpInfer.Models;
using SharpInfer.Quantization;
using Spectre.Console;

namespace SharpInfer.Cli.Commands;

internal static class EvalCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var common = new CommonOptions();
        var reference = new Option<string?>("--reference", "-r")
        {
            Description = "Reference model (e.g. the f32 original) for KL divergence and top-1 agreement; it must share the tokenizer.",
        };
        var text = new Option<string>("--text") { Description = "Plain text file to evaluate on.", Required = true };
        var ctx = new Option<int>("--ctx", "-c")
        {
            Description = "Window size in tokens (default: the model's context, at most 512). Each window starts with BOS; its second half is scored.",
        };

        var command = new Command("eval",
            "Perplexity on a text, and with --reference the mean KL divergence KL(reference || model) and top-1 agreement per token.");
        common.AddTo(command);
        command.Options.Add(reference);
        command.Options.Add(text);
        command.Options.Add(ctx);

        command.SetAction(parse =>
        {
            try
            {
                string textPath = parse.GetValue(text)!;
                string content = File.ReadAllText(textPath);
                using var loaded = common.Load(parse, stderr);
                using var referenceCheckpoint = parse.GetValue(reference) is { } r ? ModelLoader.Load(r) : null;
                using var referenceModel = referenceCheckpoint is null ? null : new LlamaModel(referenceCheckpoint, loaded.Backend);
                int context = parse.GetValue(ctx);
                if (context == 0) context = Math.Min(512, loaded.Model.Config.MaxContext);
                if (referenceModel is not null) context = Math.Min(context, referenceModel.Config.MaxContext);

                int[] tokens = loaded.Checkpoint.Tokenizer.Encode(content, addBos: false);
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stderr) });
                EvalResult? result = null;
                console.Progress().AutoClear(true).HideCompleted(true).Start(p =>
                {
                    var task = p.AddTask("evaluating", maxValue: Math.Max(1, tokens.Length / Math.Max(context, 1)));
                    result = Evaluation.Evaluate(loaded.Model, referenceModel, tokens, context, loaded.Checkpoint.Tokenizer.BosId,
                                                 (done, _) => task.Value = done);
                    task.StopTask();
                });
                Print(result!, loaded.Checkpoint.SourcePath, referenceCheckpoint?.SourcePath, textPath, tokens.Length, parse.GetValue(common.Json), stdout);
                return ExitCodes.Ok;
            }
            catch (Exception e)
            {
                return CliApp.Report(e, stderr);
            }
        });
        return command;
    }

    private static void Print(EvalResult r, string model, string? reference, string textPath, int textTokens, bool json, TextWriter stdout)
    {
        if (json)
        {
            CliJson.WriteObject(stdout, w =>
            {
                w.WriteString("model", model);
                if (reference is not null) w.WriteString("reference", reference);
                w.WriteString("text", textPath);
                w.WriteNumber("text_tokens", textTokens);
                w.WriteNumber("ctx", r.Context);
                w.WriteNumber("windows", r.Windows);
                w.WriteNumber("scored_tokens", r.ScoredTokens);
                w.WriteNumber("perplexity", r.Perplexity);
                w.WriteNumber("perplexity_stderr", r.PerplexityStdErr);
                if (reference is not null)
                {
                    w.WriteNumber("reference_perplexity", r.ReferencePerplexity!.Value);
                    w.WriteNumber("ln_ppl_ratio", r.LnPerplexityRatio!.Value);
                    w.WriteNumber("mean_kl", r.MeanKl!.Value);
                    w.WriteNumber("mean_kl_stderr", r.KlStdErr!.Value);
                    w.WriteNumber("median_kl", r.MedianKl!.Value);
                    w.WriteNumber("p99_kl", r.P99Kl!.Value);
                    w.WriteNumber("max_kl", r.MaxKl!.Value);
                    w.WriteNumber("top1_agreement", r.Top1Agreement!.Value);
                    w.WriteNumber("top1_agreement_stderr", r.Top1StdErr!.Value);
                }
            });
            return;
        }
        stdout.WriteLine($"model       {model}");
        stdout.WriteLine($"text        {textPath}: {textTokens} tokens, {r.Windows} windows of {r.Context}, {r.ScoredTokens} scored");
        stdout.WriteLine($"perplexity  {r.Perplexity:F4} ± {r.PerplexityStdErr:F4}");
        if (reference is null) return;
        stdout.WriteLine($"reference   {reference}: perplexity {r.ReferencePerplexity:F4}");
        stdout.WriteLine($"ln(PPL/PPL_ref)  {r.LnPerplexityRatio:F6}");
        stdout.WriteLine($"mean KL     {r.MeanKl:F6} ± {r.KlStdErr:F6}  (median {r.MedianKl:F6}, 99% {r.P99Kl:F6}, max {r.MaxKl:F6})");
        stdout.WriteLine($"same top-1  {100 * r.Top1Agreement:F3} ± {100 * r.Top1StdErr:F3} %");
    }
}
