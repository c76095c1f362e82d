// GenerateCommand.cs: `sharpinfer generate`: stream a completion of a prompt.
using System.CommandLine;
using System.Text.Json;
using SharpInfer.Engine;

namespace SharpInfer.Cli.Commands;

internal static class GenerateCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var common = new CommonOptions();
        var prompt = new Option<string>("--prompt", "-p") { Description = "Text to continue.", DefaultValueFactory = _ => "Once upon a time" };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Most tokens to generate.", DefaultValueFactory = _ => 64 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 = greedy (deterministic).", DefaultValueFactory = _ => 0f };
        var topK = new Option<int>("--top-k") { Description = "Sample only among the K most likely tokens (0 = off)." };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling: smallest set with probability >= P (1 = off).", DefaultValueFactory = _ => 1f };
        var minP = new Option<float>("--min-p") { Description = "Drop tokens below P times the top token's probability (0 = off)." };
        var repeat = new Option<float>("--repeat-penalty") { Description = "Penalty for tokens already seen (1 = off).", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong?>("--seed") { Description = "Seed for sampling, so runs repeat exactly." };
        var stop = new Option<string[]>("--stop") { Description = "Stop before this text (repeatable).", AllowMultipleArgumentsPerToken = false };
        var dumpLogits = new Option<string?>("--dump-logits")
        {
            Description = "Write the logits of every evaluated position (prompt and generated) to FILE as little-endian " +
                          "float32 rows [positions, vocab], plus FILE.json naming the token id at each position.",
        };

        var command = new Command("generate", "Generate text from a prompt, streaming it as it is produced.");
        common.AddTo(command);
        foreach (Option option in new Option[] { prompt, maxTokens, temperature, topK, topP, minP, repeat, seed, stop, dumpLogits })
            command.Options.Add(option);

        command.SetAction(parse =>
        {
            try
            {
                bool json = parse.GetValue(common.Json);
                var parameters = new SamplingParams
                {
                    Temperature = parse.GetValue(temperature),
                    TopK = parse.GetValue(topK),
                    TopP = parse.GetValue(topP),
                    MinP = parse.GetValue(minP),
                    RepetitionPenalty = parse.GetValue(repeat),
                    Seed = parse.GetValue(seed),
                    MaxTokens = parse.GetValue(maxTokens),
                    StopStrings = parse.GetValue(stop) ?? [],
                };
                parameters.Validate();
                using var loaded = common.Load(parse, stderr);
                var generator = new TextGenerator(loaded.Model, loaded.Checkpoint.Tokenizer);
                string promptText = parse.GetValue(prompt) ?? "";
                string? logitsPath = parse.GetValue(dumpLogits);
                using var logitsDump = logitsPath is null ? null : new LogitsDump(logitsPath, loaded.Model.VocabSize);

                // Checked before the prompt is echoed, so a refused prompt prints nothing but the error.
                var promptTokens = loaded.Checkpoint.Tokenizer.Encode(promptText, addBos: true);
                generator.ValidatePrompt(promptTokens);
                if (!json) stdout.Write(promptText);
                var result = generator.Generate(promptTokens, parameters,
                    onText: json ? null : text => { stdout.Write(text); stdout.Flush(); },
                    onLogits: logitsDump is null ? null : logitsDump.Add);
                logitsDump?.Complete();

                if (json) WriteJson(stdout, result);
                else
                {
                    stdout.WriteLine();
                    stderr.WriteLine($"[{result.PromptTokens.Count} prompt tokens, {result.GeneratedTokens.Count} generated, " +
                                     $"finish: {result.FinishReason}; prefill {result.PrefillTokensPerSecond:F1} tok/s, " +
                                     $"decode {result.DecodeTokensPerSecond:F1} tok/s]");
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

    private static void WriteJson(TextWriter stdout, GenerationResult result)
    {
        CliJson.WriteObject(stdout, w =>
        {
            w.WriteString("text", result.Text);
            w.WriteStartArray("prompt_token_ids");
            foreach (int id in result.PromptTokens) w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteStartArray("token_ids");
            foreach (int id in result.GeneratedTokens) w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteNumber("prompt_tokens", result.PromptTokens.Count);
            w.WriteNumber("generated_tokens", result.GeneratedTokens.Count);
            w.WriteString("finish_reason", result.FinishReason switch
            {
                FinishReason.EndOfSequence => "eos",
                FinishReason.StopString => "stop",
                _ => "length",
            });
            w.WriteNumber("prefill_tokens_per_second", Math.Round(result.PrefillTokensPerSecond, 2));
            w.WriteNumber("decode_tokens_per_second", Math.Round(result.DecodeTokensPerSecond, 2));
        });
    }
}
