// CudaStream.cs: a CUDA stream (an ordered queue of GPU work) that libsharpinfer's kernels can be launched on.
using static SharpInfer.Interop.Cuda.CudaDriverMethods;

namespace SharpInfer.Interop.Cuda;

/// <summary>A non-blocking stream from <see cref="CudaDevice.CreateStream"/>.</summary>
public sealed class CudaStream : IDisposable
{
    private readonly CudaStreamHandle _stream;

    internal CudaStream(CudaDevice device, CudaStreamHandle stream)
    {
        Device = device;
        _stream = stream;
    }

    public CudaDevice Device { get; }

    /// <summary>
    /// The raw CUstream, which is also a valid <c>cudaStream_t</c> for the runtime API inside libsharpinfer.
    /// Valid until <see cref="Dispose"/>; interop code should hold the stream referenced across the call.
    /// </summary>
    public nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_stream.IsClosed, this);
            return _stream.DangerousGetHandle();
        }
    }

    internal CudaStreamHandle SafeHandle => _stream;

    /// <summary>Blocks until all work queued on this stream has finished.</summary>
    public void Synchronize()
    {
        using var stream = new SafeHandleLease(_stream);
        using var scope = new CudaContextScope(_stream.Context);
        CudaException.ThrowIfFailed(cuStreamSynchronize(stream.Value), "cuStreamSynchronize");
    }

    /// <summary>True when all work queued so far has finished; never blocks.</summary>
    public bool IsComplete
    {
        get
        {
            using var stream = new SafeHandleLease(_stream);
            using var scope = new CudaContextScope(_stream.Context);
            CUresult result = cuStreamQuery(stream.Value);
            if (result == CUresult.CUDA_ERROR_NOT_READY)
            {
                return false;
            }
            CudaException.ThrowIfFailed(result, "cuStreamQuery");
            return true;
        }
    }

    /// <summary>Makes later work on this stream wait for <paramref name="cudaEvent"/>'s last record, without blocking the host.</summary>
    public void Wait(CudaEvent cudaEvent)
    {
        ArgumentNullException.ThrowIfNull(cudaEvent);
        using var stream = new SafeHandleLease(_stream);
        using var eventLease = new SafeHandleLease(cudaEvent.SafeHandle);
        using var scope = new CudaContextScope(_stream.Context);
        CudaException.ThrowIfFailed(cuStreamWaitEvent(stream.Value, eventLease.Value, 0), "cuStreamWaitEvent");
    }

    /// <summary>Destroys the stream; work already queued still completes (the driver defers the release).</summary>
    public void Dispose() => _stream.Dispose();
}
