// CudaHandles.cs: one SafeHandle per CUDA driver object, the live-object counters, and the context scope.
using System.Runtime.InteropServices;
using static SharpInfer.Interop.Cuda.CudaDriverMethods;

namespace SharpInfer.Interop.Cuda;

/// <summary>
/// Counts CUDA objects whose native side is still alive (handles not yet released), so tests can
/// assert that every context, buffer, stream and event was given back. GPU memory is invisible to
/// the GC, so a leak shows up here long before it shows up as an out-of-memory.
/// </summary>
internal static class CudaLiveObjects
{
    private static readonly int[] s_counts = new int[4];

    internal static int Contexts => Volatile.Read(ref s_counts[(int)CudaObjectKind.Context]);
    internal static int Buffers => Volatile.Read(ref s_counts[(int)CudaObjectKind.Buffer]);
    internal static int Streams => Volatile.Read(ref s_counts[(int)CudaObjectKind.Stream]);
    internal static int Events => Volatile.Read(ref s_counts[(int)CudaObjectKind.Event]);
    internal static int Total => Contexts + Buffers + Streams + Events;

    internal static void Added(CudaObjectKind kind) => Interlocked.Increment(ref s_counts[(int)kind]);
    internal static void Removed(CudaObjectKind kind) => Interlocked.Decrement(ref s_counts[(int)kind]);
}

internal enum CudaObjectKind { Context, Buffer, Stream, Event }

/// <summary>
/// A retained primary context (<c>cuDevicePrimaryCtxRetain</c>). Releasing drops the retain; the driver
/// destroys the context when its last retain goes, which includes the CUDA runtime's own inside libsharpinfer.
/// </summary>
internal sealed class CudaContextHandle : SafeHandle
{
    /// <summary>The device ordinal, needed because the primary context is released by device, not by handle.</summary>
    internal int Device { get; }

    private CudaContextHandle(nint context, int device) : base(0, ownsHandle: true)
    {
        SetHandle(context);
        Device = device;
        CudaLiveObjects.Added(CudaObjectKind.Context);
    }

    public override bool IsInvalid => handle == 0;

    internal static unsafe CudaContextHandle RetainPrimary(int device)
    {
        nint context;
        CudaException.ThrowIfFailed(cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
        return new CudaContextHandle(context, device);
    }

    protected override bool ReleaseHandle()
    {
        CUresult result = cuDevicePrimaryCtxRelease_v2(Device);
        CudaLiveObjects.Removed(CudaObjectKind.Context);
        return result == CUresult.CUDA_SUCCESS;
    }
}

/// <summary>
/// Base of the handles that live inside a context: it holds a reference on the context handle
/// (DangerousAddRef) from creation to release, so the context outlives every buffer, stream and event
/// made in it even when the owning <see cref="CudaDevice"/> is disposed first.
/// </summary>
internal abstract class CudaContextBoundHandle : SafeHandle
{
    private readonly CudaObjectKind _kind;

    internal CudaContextHandle Context { get; }

    /// <param name="context">Must already be AddRef'ed by the caller; this handle takes over that reference.</param>
    /// <param name="kind">Which live-object counter this handle is counted in.</param>
    /// <param name="value">The native handle, already created.</param>
    private protected CudaContextBoundHandle(CudaContextHandle context, CudaObjectKind kind, nint value)
        : base(0, ownsHandle: true)
    {
        Context = context;
        _kind = kind;
        SetHandle(value);
        CudaLiveObjects.Added(kind);
    }

    public override bool IsInvalid => handle == 0;

    protected sealed override bool ReleaseHandle()
    {
        // Release may run on the finalizer thread, which has no current context: push ours for the
        // destroy call, then pop so that no thread is left with a context it did not ask for.
        CUresult result = cuCtxPushCurrent_v2(Context.DangerousGetHandle());
        if (result == CUresult.CUDA_SUCCESS)
        {
            result = Destroy();
            unsafe
            {
                nint popped;
                cuCtxPopCurrent_v2(&popped);
            }
        }
        CudaLiveObjects.Removed(_kind);
        Context.DangerousRelease();
        return result == CUresult.CUDA_SUCCESS;
    }

    /// <summary>Destroys the native object; runs with <see cref="Context"/> current.</summary>
    private protected abstract CUresult Destroy();

    /// <summary>
    /// Adds a reference to <paramref name="context"/> for a handle about to be created, runs
    /// <paramref name="create"/> with the context current, and hands the reference to the new handle;
    /// on failure the reference is dropped again.
    /// </summary>
    private protected static T Create<T>(CudaContextHandle context, Func<CudaContextHandle, T> create)
        where T : CudaContextBoundHandle
    {
        bool added = false;
        context.DangerousAddRef(ref added);
        try
        {
            using var scope = new CudaContextScope(context);
            return create(context);
        }
        catch
        {
            if (added)
            {
                context.DangerousRelease();
            }
            throw;
        }
    }
}

/// <summary>Device memory from <c>cuMemAlloc_v2</c>, freed with <c>cuMemFree_v2</c>. The handle value is the CUdeviceptr.</summary>
internal sealed class CudaDeviceMemoryHandle : CudaContextBoundHandle
{
    private CudaDeviceMemoryHandle(CudaContextHandle context, ulong pointer)
        : base(context, CudaObjectKind.Buffer, (nint)pointer)
    {
    }

    internal ulong DevicePointer => (ulong)handle;

    internal static unsafe CudaDeviceMemoryHandle Allocate(CudaContextHandle context, long bytes) =>
        Create(context, ctx =>
        {
            ulong pointer;
            CudaException.ThrowIfFailed(cuMemAlloc_v2(&pointer, (nuint)bytes), "cuMemAlloc_v2");
            return new CudaDeviceMemoryHandle(ctx, pointer);
        });

    private protected override CUresult Destroy() => cuMemFree_v2((ulong)handle);
}

/// <summary>A stream from <c>cuStreamCreate</c>, destroyed with <c>cuStreamDestroy_v2</c>.</summary>
internal sealed class CudaStreamHandle : CudaContextBoundHandle
{
    private CudaStreamHandle(CudaContextHandle context, nint stream)
        : base(context, CudaObjectKind.Stream, stream)
    {
    }

    internal static unsafe CudaStreamHandle Create(CudaContextHandle context, uint flags) =>
        Create(context, ctx =>
        {
            nint stream;
            CudaException.ThrowIfFailed(cuStreamCreate(&stream, flags), "cuStreamCreate");
            return new CudaStreamHandle(ctx, stream);
        });

    private protected override CUresult Destroy() => cuStreamDestroy_v2(handle);
}

/// <summary>An event from <c>cuEventCreate</c>, destroyed with <c>cuEventDestroy_v2</c>.</summary>
internal sealed class CudaEventHandle : CudaContextBoundHandle
{
    private CudaEventHandle(CudaContextHandle context, nint cudaEvent)
        : base(context, CudaObjectKind.Event, cudaEvent)
    {
    }

    internal static unsafe CudaEventHandle Create(CudaContextHandle context, uint flags) =>
        Create(context, ctx =>
        {
            nint cudaEvent;
            CudaException.ThrowIfFailed(cuEventCreate(&cudaEvent, flags), "cuEventCreate");
            return new CudaEventHandle(ctx, cudaEvent);
        });

    private protected override CUresult Destroy() => cuEventDestroy_v2(handle);
}

/// <summary>
/// Makes a context current for one driver call and restores the previous one afterwards.
/// Push/pop rather than cuCtxSetCurrent so that a wrapper call never changes which context the
/// calling thread (or the CUDA runtime used by libsharpinfer on that thread) sees afterwards.
/// The caller keeps the context handle referenced for the scope's lifetime.
/// </summary>
internal readonly ref struct CudaContextScope
{
    internal CudaContextScope(CudaContextHandle context) =>
        CudaException.ThrowIfFailed(cuCtxPushCurrent_v2(context.DangerousGetHandle()), "cuCtxPushCurrent_v2");

    public unsafe void Dispose()
    {
        nint popped;
        cuCtxPopCurrent_v2(&popped);
    }
}

/// <summary>
/// Holds a SafeHandle referenced (DangerousAddRef) for the duration of a native call, the manual form of
/// what SafeHandle marshalling does for <c>[LibraryImport]</c>: a concurrent Dispose cannot free the native
/// object mid-call, and a call on a disposed object throws <see cref="ObjectDisposedException"/>.
/// </summary>
internal ref struct SafeHandleLease
{
    private readonly SafeHandle _handle;
    private bool _added;

    internal SafeHandleLease(SafeHandle handle)
    {
        _handle = handle;
        _added = false;
        handle.DangerousAddRef(ref _added);
    }

    internal readonly nint Value => _handle.DangerousGetHandle();

    public void Dispose()
    {
        if (_added)
        {
            _added = false;
            _handle.DangerousRelease();
        }
    }
}
