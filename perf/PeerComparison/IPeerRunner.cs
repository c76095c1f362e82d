// IPeerRunner.cs: what the comparison asks of each runtime: one sequence (timed prefill, then
// timed greedy decode) and N sequences decoding together, all from the same token ids.
namespace SharpInfer.PeerComparison;

/// <summary>One runtime with one model loaded.</summary>
internal interface IPeerRunner : IDisposable
{
    string Name { get; }
    int VocabSize { get; }

    /// <summary>
    /// Evaluates <paramref name="prompt"/> from an empty cache (timed: prefill), then runs
    /// <paramref name="steps"/> greedy decode steps of one token each (timed: decode).
    /// Tokens are the greedy ids fed to the decode steps (the first comes from the prompt's logits).
    /// </summary>
    SingleRun RunSingle(int[] prompt, int steps);

    /// <summary>
    /// Prefills one sequence per prompt (not timed) and keeps that state, so that every
    /// <see cref="IConcurrentSession.Decode"/> call starts again right after the prompts.
    /// </summary>
    IConcurrentSession PrepareConcurrent(int[][] prompts, int maxSteps);
}

/// <summary>Sequences that decode together: every step is one batched forward pass with one new token per sequence.</summary>
internal interface IConcurrentSession : IDisposable
{
    /// <summary>Rewinds every sequence to the end of its prompt and decodes <paramref name="steps"/> steps (timed).</summary>
    ConcurrentRun Decode(int steps);
}

internal sealed record SingleRun(double PrefillSeconds, double DecodeSeconds, int[] Tokens);

internal sealed record ConcurrentRun(double Seconds, int[][] Tokens);
