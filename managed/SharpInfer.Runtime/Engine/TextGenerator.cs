// TextGenerator.cs: prompt -> tokens -> forward over a KV cache -> sampling -> incremental
// detokenization, for one sequence. Stops on EOS, max tokens or a stop string.
using System.Diagnostics;
using SharpInfer.Llama;
using SharpInfer.Tokenization;

namespace SharpInfer.Engine;

public enum FinishReason { Length, EndOfSequence, StopString }

public sealed record GenerationResult(
    string Text,
    IReadOnlyList<int> PromptTokens,
    IReadOnlyList<int> GeneratedTokens,
    FinishReason FinishReason,
    TimeSpan PrefillTime,
    TimeSpan DecodeTime)
{
    public double PrefillTokensPerSecond => PromptTokens.Count / Math.Max(PrefillTime.TotalSeconds, 1e-9);
    /// <summary>Tokens generated after the first one (which comes from the prefill) per second.</summary>
    public double DecodeTokensPerSecond => Math.Max(GeneratedTokens.Count - 1, 0) / Math.Max(DecodeTime.TotalSeconds, 1e-9);
}

/// <summary>Receives the logits of every evaluated position, in order (for --dump-logits).</summary>
public delegate void LogitsObserver(int position, int tokenId, ReadOnlySpan<float> logits);

public sealed class TextGenerator(LlamaModel model, TextTokenizer tokenizer)
{
    public LlamaModel Model => model;
    public TextTokenizer Tokenizer => tokenizer;

    /// <summary>Encodes <paramref name="prompt"/> (with BOS) and generates.</summary>
    public GenerationResult Generate(string prompt, SamplingParams parameters, Action<string>? onText = null,
        LogitsObserver? onLogits = null) =>
        Generate(tokenizer.Encode(prompt, addBos: true), parameters, onText, onLogits);

    /// <summary>
    /// Throws what <see cref="Generate(IReadOnlyList{int}, SamplingParams, Action{string}?, LogitsObserver?)"/>
    /// would throw for this prompt (empty, longer than the context), so a caller can check before
    /// it shows anything.
    /// </summary>
    public void ValidatePrompt(IReadOnlyList<int> promptTokens)
    {
        if (promptTokens.Count == 0) throw new ArgumentException("the prompt is empty (no tokens)");
        int context = model.Config.MaxContext;
        if (promptTokens.Count > context)
            throw new ContextOverflowException(
                $"the prompt has {promptTokens.Count} tokens, more than the model's context of {context} tokens");
    }

    public GenerationResult Generate(IReadOnlyList<int> promptTokens, SamplingParams parameters,
        Action<string>? onText = null, LogitsObserver? onLogits = null)
    {
        parameters.Validate();
        ValidatePrompt(promptTokens);
        int context = model.Config.MaxContext;

        using var cache = model.CreateCache(Math.Min(context, promptTokens.Count + parameters.MaxTokens));
        var sampler = new Sampler(parameters);
        var decoder = new IncrementalDecoder(tokenizer);
        // Prime with the prompt so the first generated word keeps its leading space.
        foreach (int id in promptTokens) decoder.Append(id);
        var stops = new StopStringMatcher(parameters.StopStrings);
        var history = new List<int>(promptTokens);
        var generated = new List<int>();
        var text = new System.Text.StringBuilder();
        int vocab = model.VocabSize;
        var finish = FinishReason.Length;

        void Emit(string delta)
        {
            if (delta.Length == 0) return;
            text.Append(delta);
            onText?.Invoke(delta);
        }

        // Prefill: logits for every prompt position only when someone observes them.
        var clock = Stopwatch.StartNew();
        int[] prompt = [.. promptTokens];
        float[] logits = new float[(onLogits is null ? 1 : prompt.Length) * vocab];
        model.Forward(prompt, cache, logits, allPositions: onLogits is not null);
        Span<float> last = logits.AsSpan(logits.Length - vocab, vocab);
        if (onLogits is not null)
            for (int p = 0; p < prompt.Length; p++) onLogits(p, prompt[p], logits.AsSpan(p * vocab, vocab));
        TimeSpan prefill = clock.Elapsed;
        clock.Restart();

        var eos = new HashSet<int>(tokenizer.EosIds);
        while (generated.Count < parameters.MaxTokens)
        {
            int next = sampler.Sample(last, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(history));
            if (!parameters.IgnoreEos && eos.Contains(next)) { finish = FinishReason.EndOfSequence; break; }
            generated.Add(next);
            history.Add(next);
            Emit(stops.Push(decoder.Append(next)));
            if (stops.Stopped) { finish = FinishReason.StopString; break; }
            if (generated.Count == parameters.MaxTokens || cache.Length == cache.Capacity) break;

            last = logits.AsSpan(0, vocab);
            model.Forward([next], cache, last);
            onLogits?.Invoke(cache.Length - 1, next, last);
        }
        if (finish != FinishReason.StopString) Emit(stops.Push(decoder.Flush()));
        Emit(stops.Flush());
        return new GenerationResult(text.ToString(), promptTokens, generated, finish, prefill, clock.Elapsed);
    }
}
