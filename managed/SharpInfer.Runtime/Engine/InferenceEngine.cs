// InferenceEngine.cs: continuous batching. Requests arrive from any thread; one background loop
// owns the model, the KV pool, the block manager and the scheduler, and each step runs one
// batched forward over every scheduled sequence, then samples each request with its own
// parameters and streams detokenized text back through a per-request channel.
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using SharpInfer.Llama;
using SharpInfer.Tokenization;

namespace SharpInfer.Engine;

/// <summary>
/// Serves many generation requests at once over one model. Submission is thread-safe; the model
/// is used only from the engine's own thread, so nothing else may run forwards on the same
/// <see cref="LlamaModel"/> while the engine is alive.
/// </summary>
public sealed class InferenceEngine : IDisposable
{
    private readonly IBatchForward _model;
    private readonly IDisposable? _ownedModel;
    private readonly TextTokenizer _tokenizer;
    private readonly HashSet<int> _eos;
    private readonly Scheduler _scheduler;
    private readonly EngineOptions _options;
    private readonly ConcurrentQueue<(Request Request, bool Cancel)> _commands = new();
    private readonly ManualResetEventSlim _wake = new(false);
    private readonly Dictionary<SeqId, Request> _active = [];
    private readonly EngineMetrics _metrics;
    private readonly Thread _thread;
    private readonly Lock _postLock = new();
    private bool _closed;           // the loop accepts no more commands (under _postLock)
    private volatile bool _stopping;
    private int _nextId;
    private long _nextArrival;
    private float[] _logits = [];
    private readonly List<(Request Request, int Row, int Token, TokenLogprobs? Logprobs)> _sampleRows = [];
    private long _generated, _steps, _completed;
    private long _stepTimestamp;
    private EngineStats _stats;

    /// <summary>
    /// An engine over <paramref name="model"/> with its own KV pool (sized by
    /// <paramref name="options"/>). The model stays the caller's to dispose, after the engine.
    /// </summary>
    public InferenceEngine(LlamaModel model, TextTokenizer tokenizer, EngineOptions? options = null)
        : this(CreateRunner(model, options ??= new EngineOptions()), tokenizer, options, ownsModel: true)
    {
    }

    internal InferenceEngine(IBatchForward model, TextTokenizer tokenizer, EngineOptions? options = null, bool ownsModel = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options ??= new EngineOptions();
        options.Validate();
        _model = model;
        _ownedModel = ownsModel ? model as IDisposable : null;
        _tokenizer = tokenizer;
        _options = options;
        _eos = [.. tokenizer.EosIds];
        int budget = options.MaxBatchTokens == 0 ? model.MaxBatch : Math.Min(options.MaxBatchTokens, model.MaxBatch);
        _scheduler = new Scheduler(new KvBlockManager(model.NumBlocks, model.BlockSize, options.EnablePrefixCaching), budget, options.MaxRunningSequences);
        _stats = Snapshot();
        _metrics = new EngineMetrics(this, () => Stats);
        _thread = new Thread(Loop) { IsBackground = true, Name = "SharpInfer engine" };
        _thread.Start();
    }

    private static BatchModelRunner CreateRunner(LlamaModel model, EngineOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        options.Validate();
        int blocks = options.KvBlocks > 0 ? options.KvBlocks
            : 4 * ((model.Config.MaxContext + options.BlockSize - 1) / options.BlockSize);
        return new BatchModelRunner(model, model.CreatePagedCache(blocks, options.BlockSize, options.KvCacheDType));
    }

    public TextTokenizer Tokenizer => _tokenizer;
    public int VocabSize => _model.VocabSize;
    public int MaxContext => _model.MaxContext;
    public int KvBlocks => _model.NumBlocks;
    public int BlockSize => _model.BlockSize;
    /// <summary>Most tokens one step computes.</summary>
    public int MaxBatchTokens => _scheduler.MaxBatchTokens;
    /// <summary>Largest MaxTokens a request may ask for (EngineOptions.MaxTokensLimit; 0: only the context bounds it).</summary>
    public int MaxTokensLimit => _options.MaxTokensLimit;

    /// <summary>The latest counters (updated after every step).</summary>
    public EngineStats Stats => Volatile.Read(ref _stats);

    /// <summary>The block manager (owned by the step loop: read it only while the engine is idle).</summary>
    internal KvBlockManager BlockManager => _scheduler.Blocks;

    /// <summary>Encodes <paramref name="prompt"/> with BOS and generates; see the token overload.</summary>
    public IAsyncEnumerable<GenerationDelta> GenerateAsync(string prompt, SamplingParams parameters, CancellationToken cancellationToken = default) =>
        GenerateAsync(prompt, parameters, priority: 0, cancellationToken);

    public IAsyncEnumerable<GenerationDelta> GenerateAsync(string prompt, SamplingParams parameters, int priority, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return GenerateAsync(_tokenizer.Encode(prompt, addBos: true), parameters, priority, cancellationToken);
    }

    public IAsyncEnumerable<GenerationDelta> GenerateAsync(IReadOnlyList<int> promptTokens, SamplingParams parameters, CancellationToken cancellationToken = default) =>
        GenerateAsync(promptTokens, parameters, priority: 0, cancellationToken);

    /// <summary>
    /// Generates a continuation of <paramref name="promptTokens"/>. Invalid input throws
    /// ArgumentException here, before anything is queued; the request is queued when enumeration
    /// starts. Cancelling (or leaving the enumeration early) releases its KV blocks before the
    /// enumerator finishes. <paramref name="priority"/>: larger is served first and preempted last.
    /// </summary>
    public IAsyncEnumerable<GenerationDelta> GenerateAsync(IReadOnlyList<int> promptTokens, SamplingParams parameters, int priority,
        CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        var request = CreateRequest(promptTokens, parameters, priority);
        return Stream(request, cancellationToken);
    }

    /// <summary>Throws ArgumentException unless the request can run on this engine.</summary>
    public void ValidateRequest(IReadOnlyList<int> promptTokens, SamplingParams parameters)
    {
        ArgumentNullException.ThrowIfNull(promptTokens);
        ArgumentNullException.ThrowIfNull(parameters);
        parameters.Validate();
        int count = promptTokens.Count;
        if (count == 0) throw new ArgumentException("the prompt is empty (no tokens)", nameof(promptTokens));
        for (int i = 0; i < count; i++)
            if ((uint)promptTokens[i] >= (uint)VocabSize)
                throw new ArgumentException($"prompt token {i} is {promptTokens[i]}, outside the vocabulary [0, {VocabSize})", nameof(promptTokens));
        if (count > MaxContext)
            throw new ArgumentException($"the prompt has {count} tokens, more than the model's context of {MaxContext} tokens", nameof(promptTokens));
        if (_options.MaxTokensLimit > 0 && parameters.MaxTokens > _options.MaxTokensLimit)
            throw new ArgumentException($"max tokens {parameters.MaxTokens} exceeds this engine's limit of {_options.MaxTokensLimit}", nameof(parameters));
        if ((long)count + parameters.MaxTokens > MaxContext)
            throw new ArgumentException(
                $"the prompt's {count} tokens plus max tokens {parameters.MaxTokens} exceed the model's context of {MaxContext} tokens", nameof(parameters));
        // The last generated token is never fed back, so it needs no K/V slot.
        int blocks = _scheduler.Blocks.BlocksFor(Math.Max(count, count + parameters.MaxTokens - 1));
        if (blocks > KvBlocks)
            throw new ArgumentException($"the request needs {blocks} KV blocks but the pool has {KvBlocks}", nameof(parameters));
        if (parameters.LogitBias is not null)
            foreach (int id in parameters.LogitBias.Keys)
                if (id >= VocabSize) throw new ArgumentException($"logit bias names token {id}, outside the vocabulary [0, {VocabSize})", nameof(parameters));
    }

    private Request CreateRequest(IReadOnlyList<int> promptTokens, SamplingParams parameters, int priority)
    {
        ValidateRequest(promptTokens, parameters);
        var id = new SeqId(Interlocked.Increment(ref _nextId));
        var sequence = new SequenceState(id, promptTokens, priority, Interlocked.Increment(ref _nextArrival));
        var decoder = new IncrementalDecoder(_tokenizer);
        // Primed with the prompt so the first generated word keeps its leading space (as TextGenerator does).
        foreach (int token in promptTokens) decoder.Append(token);
        return new Request(this, sequence, parameters, decoder);
    }

    private async IAsyncEnumerable<GenerationDelta> Stream(Request request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Post(request, cancel: false);
        using var registration = cancellationToken.Register(static state => ((Request)state!).Cancel(), request);
        try
        {
            var reader = request.Output.Reader;
            while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
                while (reader.TryRead(out var delta))
                    yield return delta;
        }
        finally
        {
            if (!request.Released.Task.IsCompleted)
            {
                request.Cancel();
                await request.Released.Task.ConfigureAwait(false);
            }
        }
    }

    private void Post(Request request, bool cancel)
    {
        lock (_postLock)
        {
            if (!_closed)
            {
                if (!cancel) request.SubmittedAt = Stopwatch.GetTimestamp();
                _commands.Enqueue((request, cancel));
                _wake.Set();
                return;
            }
        }
        if (!cancel) request.Fail(new ObjectDisposedException(nameof(InferenceEngine)));
    }

    // ---- the step loop (engine thread only below) ------------------------------------------

    private void Loop()
    {
        Exception? fatal = null;
        try
        {
            while (true)
            {
                _wake.Reset();
                DrainCommands();
                if (_stopping) break;
                if (!_scheduler.HasWork)
                {
                    Publish();
                    _wake.Wait();
                    continue;
                }
                RunStep();
                Publish();
            }
        }
        catch (Exception e)
        {
            fatal = e;
        }
        lock (_postLock) _closed = true;
        DrainCommands();
        Exception error = fatal is null ? new ObjectDisposedException(nameof(InferenceEngine))
            : new InvalidOperationException($"the engine stopped after an internal error: {fatal.Message}", fatal);
        foreach (var request in _active.Values.ToArray()) End(request, error);
        Publish();
    }

    private void DrainCommands()
    {
        while (_commands.TryDequeue(out var command))
        {
            var request = command.Request;
            var id = request.Sequence.Id;
            if (command.Cancel)
            {
                if (_active.ContainsKey(id)) End(request, new OperationCanceledException("the request was cancelled"));
            }
            else if (request.Sequence.Status == SequenceStatus.Waiting && !_active.ContainsKey(id))
            {
                _active.Add(id, request);
                request.Span = new EngineTracing.RequestSpan(id.Value, request.Sequence.PromptLength);
                if (request.Parameters.MaxTokens == 0) Finish(request, FinishReason.Length);
                else _scheduler.Add(request.Sequence);
            }
        }
    }

    private void RunStep()
    {
        long started = Stopwatch.GetTimestamp();
        ScheduledStep step;
        using (EngineTracing.Step("schedule")) step = _scheduler.Schedule();
        if (step.IsEmpty)
            throw new InvalidOperationException($"nothing could be scheduled with {_scheduler.Waiting.Count} sequences waiting " +
                                                $"and {_scheduler.Blocks.FreeBlocks} of {KvBlocks} KV blocks free");
        int vocab = VocabSize, rows = step.Plan.LogitRowCount;
        if (_logits.Length < rows * vocab) _logits = new float[Math.Max(rows, 8) * vocab];
        try
        {
            using var forward = EngineTracing.Step("forward");
            _model.Forward(step.Plan, _logits.AsSpan(0, rows * vocab));
        }
        catch (Exception e)
        {
            // The step's K/V may be half written: its requests fail, everyone else carries on.
            foreach (var chunk in step.Chunks)
                if (_active.TryGetValue(chunk.Sequence.Id, out var failed)) End(failed, e);
            return;
        }
        _scheduler.Complete(step);
        _steps++;
        _stepTimestamp = Stopwatch.GetTimestamp();
        // Sampling is per request and independent, so large vocabularies sample in parallel;
        // everything that touches engine state happens afterwards, in row order.
        using var sample = EngineTracing.Step("sample");
        _sampleRows.Clear();
        foreach (var chunk in step.Chunks)
            if (chunk.NeedsSample && _active.TryGetValue(chunk.Sequence.Id, out var request))
                _sampleRows.Add((request, chunk.LogitRow, 0, null));
        if (_sampleRows.Count > 1 && (long)_sampleRows.Count * vocab >= ParallelSamplingThreshold)
            Parallel.For(0, _sampleRows.Count, SampleRow);
        else
            for (int i = 0; i < _sampleRows.Count; i++) SampleRow(i);
        foreach (var (request, _, token, logprobs) in _sampleRows) Advance(request, token, logprobs);
        _metrics.RecordStep(Stopwatch.GetElapsedTime(started));
    }

    /// <summary>Logit elements per step above which rows are sampled in parallel.</summary>
    private const long ParallelSamplingThreshold = 1 << 16;

    private void SampleRow(int i)
    {
        var (request, row, _, _) = _sampleRows[i];
        var s = request.Sequence;
        int vocab = VocabSize;
        int token = request.Sampler.Sample(_logits.AsSpan(row * vocab, vocab), s.TokenSpan, s.PromptLength, out var logprobs);
        _sampleRows[i] = (request, row, token, logprobs);
    }

    /// <summary>Appends the sampled token and streams it, as TextGenerator does for one sequence.</summary>
    private void Advance(Request request, int next, TokenLogprobs? logprobs)
    {
        var s = request.Sequence;
        var p = request.Parameters;
        if (!request.HasFirstToken)
        {
            request.HasFirstToken = true;
            _metrics.RecordTimeToFirstToken(Stopwatch.GetElapsedTime(request.SubmittedAt));
        }
        if (!p.IgnoreEos && _eos.Contains(next))
        {
            Finish(request, FinishReason.EndOfSequence);
            return;
        }
        s.Append(next);
        _generated++;
        string text = request.Stops.Push(request.Decoder.Append(next));
        request.Output.Writer.TryWrite(new GenerationDelta
        {
            TokenIds = [next],
            Text = text,
            Logprobs = logprobs is null ? null : [logprobs],
            Timestamp = _stepTimestamp,
        });
        if (request.Stops.Stopped) Finish(request, FinishReason.StopString);
        else if (s.GeneratedCount == p.MaxTokens || s.ComputedTokens >= MaxContext) Finish(request, FinishReason.Length);
    }

    private void Finish(Request request, FinishReason reason)
    {
        string tail = reason == FinishReason.StopString ? "" : request.Stops.Push(request.Decoder.Flush());
        tail += request.Stops.Flush();
        var s = request.Sequence;
        var usage = new GenerationUsage(s.PromptLength, s.GeneratedCount, s.CachedPromptTokens);
        _completed++;
        request.Span?.End(reason.ToString(), s.GeneratedCount, s.CachedPromptTokens);
        Release(request);
        request.Output.Writer.TryWrite(new GenerationDelta { Text = tail, FinishReason = reason, Usage = usage, Timestamp = Stopwatch.GetTimestamp() });
        request.Output.Writer.TryComplete();
    }

    /// <summary>Ends a request with an error (cancellation, a failed step, shutdown).</summary>
    private void End(Request request, Exception error)
    {
        request.Span?.End(error is OperationCanceledException ? "cancelled" : "error", request.Sequence.GeneratedCount, request.Sequence.CachedPromptTokens);
        Release(request);
        request.Output.Writer.TryComplete(error);
    }

    /// <summary>Frees the request's blocks and publishes the counters before anyone is told, so a
    /// caller that sees its request end also sees the pool without it.</summary>
    private void Release(Request request)
    {
        _active.Remove(request.Sequence.Id);
        _scheduler.Remove(request.Sequence);
        Publish();
        request.Released.TrySetResult();
    }

    private void Publish()
    {
        var stats = Snapshot();
        Volatile.Write(ref _stats, stats);
        _metrics.Publish(stats);
    }

    private EngineStats Snapshot()
    {
        var blocks = _scheduler.Blocks;
        return new EngineStats
        {
            RunningSequences = _scheduler.Running.Count,
            WaitingSequences = _scheduler.Waiting.Count,
            KvBlocksTotal = blocks.NumBlocks,
            KvBlocksUsed = blocks.UsedBlocks,
            KvBlocksFree = blocks.FreeBlocks,
            KvBlocksCached = blocks.CachedFreeBlocks,
            Preemptions = _scheduler.Preemptions,
            PrefixCacheQueryTokens = _scheduler.PrefixQueryTokens,
            PrefixCacheHitTokens = _scheduler.PrefixHitTokens,
            PromptTokensComputed = _scheduler.PromptTokensComputed,
            PromptTokensCached = _scheduler.PromptTokensCached,
            GeneratedTokens = _generated,
            Steps = _steps,
            CompletedRequests = _completed,
        };
    }

    /// <summary>Stops the loop; requests still running end with ObjectDisposedException.</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _wake.Set();
        _thread.Join();
        _metrics.Dispose();
        _ownedModel?.Dispose();
        _wake.Dispose();
    }

    /// <summary>One request: its sequence, sampling state and output stream.</summary>
    private sealed class Request(InferenceEngine engine, SequenceState sequence, SamplingParams parameters, IncrementalDecoder decoder)
    {
        public SequenceState Sequence { get; } = sequence;
        public SamplingParams Parameters { get; } = parameters;
        public Sampler Sampler { get; } = new(parameters);
        public IncrementalDecoder Decoder { get; } = decoder;
        public StopStringMatcher Stops { get; } = new(parameters.StopStrings);
        public Channel<GenerationDelta> Output { get; } = Channel.CreateUnbounded<GenerationDelta>(
            new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        /// <summary>Completes once the engine holds nothing of this request (its blocks are free).</summary>
        public TaskCompletionSource Released { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public long SubmittedAt { get; set; }
        /// <summary>The request's trace span, from when the engine takes it until it ends.</summary>
        public EngineTracing.RequestSpan? Span { get; set; }
        public bool HasFirstToken { get; set; }

        public void Cancel()
        {
            if (!Released.Task.IsCompleted) engine.Post(this, cancel: true);
        }

        /// <summary>Fails a request the loop never took.</summary>
        public void Fail(Exception error)
        {
            Released.TrySetResult();
            Output.Writer.TryComplete(error);
        }
    }
}
