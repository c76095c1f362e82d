// CudaEvent.cs: a CUDA event: a marker recorded on a stream, for GPU-side timing and cross-stream ordering.
using static SharpInfer.Interop.Cuda.CudaDriverMethods;

namespace SharpInfer.Interop.Cuda;

/// <summary>A timing-enabled event from <see cref="CudaDevice.CreateEvent"/>.</summary>
public sealed class CudaEvent : IDisposable
{
    private readonly CudaEventHandle _event;

    internal CudaEvent(CudaDevice device, CudaEventHandle cudaEvent)
    {
        Device = device;
        _event = cudaEvent;
    }

    public CudaDevice Device { get; }

    /// <summary>The raw CUevent (also a valid <c>cudaEvent_t</c>). Valid until <see cref="Dispose"/>.</summary>
    public nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_event.IsClosed, this);
            return _event.DangerousGetHandle();
        }
    }

    internal CudaEventHandle SafeHandle => _event;

    /// <summary>Records the event on <paramref name="stream"/>: it completes when the work queued before it does.</summary>
    public void Record(CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var cudaEvent = new SafeHandleLease(_event);
        using var streamLease = new SafeHandleLease(stream.SafeHandle);
        using var scope = new CudaContextScope(_event.Context);
        CudaException.ThrowIfFailed(cuEventRecord(cudaEvent.Value, streamLease.Value), "cuEventRecord");
    }

    /// <summary>Blocks until the work before the last <see cref="Record"/> has finished.</summary>
    public void Synchronize()
    {
        using var cudaEvent = new SafeHandleLease(_event);
        using var scope = new CudaContextScope(_event.Context);
        CudaException.ThrowIfFailed(cuEventSynchronize(cudaEvent.Value), "cuEventSynchronize");
    }

    /// <summary>True when the work before the last <see cref="Record"/> has finished (or it was never recorded); never blocks.</summary>
    public bool IsComplete
    {
        get
        {
            using var cudaEvent = new SafeHandleLease(_event);
            using var scope = new CudaContextScope(_event.Context);
            CUresult result = cuEventQuery(cudaEvent.Value);
            if (result == CUresult.CUDA_ERROR_NOT_READY)
            {
                return false;
            }
            CudaException.ThrowIfFailed(result, "cuEventQuery");
            return true;
        }
    }

    /// <summary>
    /// GPU time between two completed events, in milliseconds (resolution about 0.5 microseconds).
    /// Synchronize <paramref name="end"/> first; an unfinished event fails with CUDA_ERROR_NOT_READY.
    /// </summary>
    public static unsafe float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        using var startLease = new SafeHandleLease(start._event);
        using var endLease = new SafeHandleLease(end._event);
        using var scope = new CudaContextScope(start._event.Context);
        float milliseconds;
        CudaException.ThrowIfFailed(
            cuEventElapsedTime(&milliseconds, startLease.Value, endLease.Value), "cuEventElapsedTime");
        return milliseconds;
    }

    public void Dispose() => _event.Dispose();
}
