// CudaDevice.cs: an opened GPU: holds its primary context and creates buffers, streams and events in it.
using static SharpInfer.Interop.Cuda.CudaDriverMethods;

namespace SharpInfer.Interop.Cuda;

/// <summary>
/// One CUDA device, opened by retaining its primary context: the same context the CUDA runtime inside
/// libsharpinfer uses, so device pointers and streams made here are valid in its kernels.
/// </summary>
/// <remarks>
/// Every call makes the context current only for its own duration (push/pop), so objects may be used
/// from any thread and never change the calling thread's current context; <see cref="MakeCurrent"/>
/// is the one call that does, on purpose. Disposing the device while buffers, streams or events made
/// from it are alive is allowed: they keep the context retained until they are disposed too.
/// </remarks>
public sealed unsafe class CudaDevice : IDisposable
{
    private readonly CudaContextHandle _context;

    /// <summary>Opens device <paramref name="ordinal"/> (0-based among visible devices).</summary>
    /// <exception cref="CudaUnavailableException">No driver, no GPU, or fewer devices than <paramref name="ordinal"/> + 1.</exception>
    /// <exception cref="CudaException">The driver failed to retain the context.</exception>
    public CudaDevice(int ordinal)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ordinal);
        CudaDriver.EnsureAvailable(ordinal);
        Info = CudaDriver.QueryDevice(ordinal);

        int device;
        CudaException.ThrowIfFailed(cuDeviceGet(&device, ordinal), "cuDeviceGet");
        _context = CudaContextHandle.RetainPrimary(device);
    }

    /// <summary>Everything the driver reported about this device when it was opened.</summary>
    public CudaDeviceInfo Info { get; }

    public int Ordinal => Info.Ordinal;
    public string Name => Info.Name;
    public CudaComputeCapability ComputeCapability => Info.ComputeCapability;
    public int MultiprocessorCount => Info.MultiprocessorCount;
    public long TotalMemoryBytes => Info.TotalMemoryBytes;

    /// <summary>Theoretical peak memory bandwidth (see <see cref="CudaDeviceInfo.MemoryBandwidthBytesPerSecond"/>).</summary>
    public long MemoryBandwidthBytesPerSecond => Info.MemoryBandwidthBytesPerSecond;

    /// <summary>The retained primary context, for interop code that must keep it alive across a native call.</summary>
    internal CudaContextHandle Context => _context;

    /// <summary>
    /// Makes this device's primary context current on the calling thread, as <c>cudaSetDevice</c> would,
    /// for code that calls CUDA (libsharpinfer's runtime API) outside these wrappers.
    /// </summary>
    public void MakeCurrent()
    {
        using var context = new SafeHandleLease(_context);
        CudaException.ThrowIfFailed(cuCtxSetCurrent(context.Value), "cuCtxSetCurrent");
    }

    /// <summary>Allocates <paramref name="bytes"/> of device memory (uninitialized, 256-byte aligned at least).</summary>
    /// <exception cref="CudaException">With <see cref="CUresult.CUDA_ERROR_OUT_OF_MEMORY"/> when the device is full.</exception>
    public CudaBuffer Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        return new CudaBuffer(this, CudaDeviceMemoryHandle.Allocate(_context, bytes), bytes);
    }

    /// <summary>
    /// Creates a stream that does not synchronize with the legacy default stream (CU_STREAM_NON_BLOCKING),
    /// so work on it can overlap work that other code queues on stream 0.
    /// </summary>
    public CudaStream CreateStream() =>
        new(this, CudaStreamHandle.Create(_context, CU_STREAM_NON_BLOCKING));

    /// <summary>Creates an event with timing enabled, for <see cref="CudaEvent.ElapsedMilliseconds"/>.</summary>
    public CudaEvent CreateEvent() =>
        new(this, CudaEventHandle.Create(_context, CU_EVENT_DEFAULT));

    /// <summary>Free and total device memory now, as the driver sees it (other processes included).</summary>
    public (long Free, long Total) MemoryInfo()
    {
        using var context = new SafeHandleLease(_context);
        using var scope = new CudaContextScope(_context);
        nuint free, total;
        CudaException.ThrowIfFailed(cuMemGetInfo_v2(&free, &total), "cuMemGetInfo_v2");
        return ((long)free, (long)total);
    }

    /// <summary>Waits for all work queued in this device's context, on every stream.</summary>
    public void Synchronize()
    {
        using var context = new SafeHandleLease(_context);
        using var scope = new CudaContextScope(_context);
        CudaException.ThrowIfFailed(cuCtxSynchronize(), "cuCtxSynchronize");
    }

    /// <summary>Drops this object's retain of the primary context (objects made from it keep their own).</summary>
    public void Dispose() => _context.Dispose();

    public override string ToString() => $"CUDA device {Ordinal}: {Name} (sm_{ComputeCapability.SmVersion})";
}
