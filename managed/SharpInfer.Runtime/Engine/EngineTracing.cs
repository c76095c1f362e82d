// EngineTracing.cs: where the engine's time goes, for two kinds of tools at once: NVTX ranges
// (Nsight Systems, beside the native ops' ranges) and System.Diagnostics activities (the
// ActivitySource "SharpInfer.Engine", for OpenTelemetry exporters in C# services).
//   - each step's phases: "schedule", "forward", "sample" (NVTX ranges pushed on the engine
//     thread; activities only when a listener samples them, so an idle source costs nothing);
//   - each request: from submission to its end, "request <id>" (an NVTX start/end range, and
//     an activity carrying the token counts and finish reason).
using System.Diagnostics;
using SharpInfer.Interop;

namespace SharpInfer.Engine;

internal static class EngineTracing
{
    public const string SourceName = "SharpInfer.Engine";
    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>Marks one phase of a step; dispose to end it.</summary>
    public static Phase Step(string name) => new(NativeTrace.Push(name), Source.StartActivity(name, ActivityKind.Internal));

    public readonly struct Phase(NativeTrace.Range range, Activity? activity) : IDisposable
    {
        public void Dispose()
        {
            activity?.Dispose();
            range.Dispose();
        }
    }

    /// <summary>The span of one request, from submission until it finishes or fails.</summary>
    public sealed class RequestSpan
    {
        private readonly ulong _nvtx;
        private readonly Activity? _activity;
        private bool _ended;

        public RequestSpan(long id, int promptTokens)
        {
            string name = $"request {id}";
            _nvtx = NativeTrace.Start(name);
            // A root span that does not become the engine thread's current activity: requests
            // overlap each other and the steps, so none of them is the other's parent.
            var current = Activity.Current;
            Activity.Current = null;
            _activity = Source.StartActivity("request", ActivityKind.Internal);
            Activity.Current = current;
            _activity?.SetTag("sharpinfer.request.id", id);
            _activity?.SetTag("sharpinfer.request.prompt_tokens", promptTokens);
        }

        /// <summary>Ends the span once (later calls do nothing).</summary>
        public void End(string outcome, int completionTokens, int cachedPromptTokens)
        {
            if (_ended) return;
            _ended = true;
            if (_activity is not null)
            {
                _activity.SetTag("sharpinfer.request.finish_reason", outcome);
                _activity.SetTag("sharpinfer.request.completion_tokens", completionTokens);
                _activity.SetTag("sharpinfer.request.cached_prompt_tokens", cachedPromptTokens);
                if (outcome == "error") _activity.SetStatus(ActivityStatusCode.Error);
                _activity.Dispose();
            }
            NativeTrace.End(_nvtx);
        }
    }
}
