// CudaBuffer.cs: a block of device memory with host<->device copies and memset, sync and stream-ordered.
using static SharpInfer.Interop.Cuda.CudaDriverMethods;

namespace SharpInfer.Interop.Cuda;

/// <summary>
/// Device memory from <see cref="CudaDevice.Allocate"/>. The GC does not see GPU memory: dispose it.
/// Device memory is never exposed as a Span; host data crosses as spans pinned for the call only.
/// </summary>
public sealed unsafe class CudaBuffer : IDisposable
{
    private readonly CudaDeviceMemoryHandle _memory;

    internal CudaBuffer(CudaDevice device, CudaDeviceMemoryHandle memory, long byteLength)
    {
        Device = device;
        _memory = memory;
        ByteLength = byteLength;
        DevicePointer = memory.DevicePointer;
    }

    /// <summary>The device that allocated this buffer.</summary>
    public CudaDevice Device { get; }

    /// <summary>The CUdeviceptr, for passing to kernels. Valid until <see cref="Dispose"/>.</summary>
    public ulong DevicePointer { get; }

    public long ByteLength { get; }

    /// <summary>The memory handle, for interop code that must keep the memory alive across a native call.</summary>
    internal CudaDeviceMemoryHandle SafeHandle => _memory;

    /// <summary>Copies <paramref name="source"/> into the buffer at <paramref name="byteOffset"/>; returns when the copy is done.</summary>
    public void CopyFrom<T>(ReadOnlySpan<T> source, long byteOffset = 0) where T : unmanaged
    {
        long bytes = ByteCount(source.Length, sizeof(T));
        CheckRange(byteOffset, bytes);
        if (bytes == 0)
        {
            return;
        }
        using var memory = new SafeHandleLease(_memory);
        using var scope = new CudaContextScope(_memory.Context);
        fixed (T* host = source)
        {
            CudaException.ThrowIfFailed(
                cuMemcpyHtoD_v2(DevicePointer + (ulong)byteOffset, host, (nuint)bytes), "cuMemcpyHtoD_v2");
        }
    }

    /// <summary>
    /// Queues a copy of <paramref name="source"/> into the buffer on <paramref name="stream"/>.
    /// </summary>
    /// <remarks>
    /// The span is pinned only for this call, which is safe because of how the driver treats pageable
    /// memory (all GC memory is pageable): it stages the data before returning, so the span may be reused
    /// at once. Only page-locked host memory (cuMemHostAlloc / cuMemHostRegister) is read later, truly
    /// asynchronously; such memory does not move, and the caller must keep it alive until the stream is
    /// synchronized.
    /// </remarks>
    public void CopyFrom<T>(ReadOnlySpan<T> source, CudaStream stream, long byteOffset = 0) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(stream);
        long bytes = ByteCount(source.Length, sizeof(T));
        CheckRange(byteOffset, bytes);
        CheckSameContext(stream);
        if (bytes == 0)
        {
            return;
        }
        using var memory = new SafeHandleLease(_memory);
        using var streamLease = new SafeHandleLease(stream.SafeHandle);
        using var scope = new CudaContextScope(_memory.Context);
        fixed (T* host = source)
        {
            CudaException.ThrowIfFailed(
                cuMemcpyHtoDAsync_v2(DevicePointer + (ulong)byteOffset, host, (nuint)bytes, streamLease.Value),
                "cuMemcpyHtoDAsync_v2");
        }
    }

    /// <summary>Copies from the buffer at <paramref name="byteOffset"/> into <paramref name="destination"/>; returns when the data is there.</summary>
    public void CopyTo<T>(Span<T> destination, long byteOffset = 0) where T : unmanaged
    {
        long bytes = ByteCount(destination.Length, sizeof(T));
        CheckRange(byteOffset, bytes);
        if (bytes == 0)
        {
            return;
        }
        using var memory = new SafeHandleLease(_memory);
        using var scope = new CudaContextScope(_memory.Context);
        fixed (T* host = destination)
        {
            CudaException.ThrowIfFailed(
                cuMemcpyDtoH_v2(host, DevicePointer + (ulong)byteOffset, (nuint)bytes), "cuMemcpyDtoH_v2");
        }
    }

    /// <summary>
    /// Queues a copy from the buffer into <paramref name="destination"/> on <paramref name="stream"/>,
    /// ordered after the work already on that stream.
    /// </summary>
    /// <remarks>
    /// For pageable destinations (all GC memory) the driver returns only once the copy has landed, so
    /// pinning for the call is enough. A page-locked destination is written later: keep it alive and
    /// read it only after the stream is synchronized.
    /// </remarks>
    public void CopyTo<T>(Span<T> destination, CudaStream stream, long byteOffset = 0) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(stream);
        long bytes = ByteCount(destination.Length, sizeof(T));
        CheckRange(byteOffset, bytes);
        CheckSameContext(stream);
        if (bytes == 0)
        {
            return;
        }
        using var memory = new SafeHandleLease(_memory);
        using var streamLease = new SafeHandleLease(stream.SafeHandle);
        using var scope = new CudaContextScope(_memory.Context);
        fixed (T* host = destination)
        {
            CudaException.ThrowIfFailed(
                cuMemcpyDtoHAsync_v2(host, DevicePointer + (ulong)byteOffset, (nuint)bytes, streamLease.Value),
                "cuMemcpyDtoHAsync_v2");
        }
    }

    /// <summary>Sets every byte to zero.</summary>
    public void Clear() => Fill(0);

    /// <summary>Queues setting every byte to zero on <paramref name="stream"/>.</summary>
    public void Clear(CudaStream stream) => Fill(0, stream);

    /// <summary>Sets every byte to <paramref name="value"/> (e.g. 0xFF to poison memory a kernel must not read).</summary>
    public void Fill(byte value)
    {
        using var memory = new SafeHandleLease(_memory);
        using var scope = new CudaContextScope(_memory.Context);
        CudaException.ThrowIfFailed(cuMemsetD8_v2(DevicePointer, value, (nuint)ByteLength), "cuMemsetD8_v2");
    }

    /// <summary>Queues setting every byte to <paramref name="value"/> on <paramref name="stream"/>.</summary>
    public void Fill(byte value, CudaStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        CheckSameContext(stream);
        using var memory = new SafeHandleLease(_memory);
        using var streamLease = new SafeHandleLease(stream.SafeHandle);
        using var scope = new CudaContextScope(_memory.Context);
        CudaException.ThrowIfFailed(
            cuMemsetD8Async(DevicePointer, value, (nuint)ByteLength, streamLease.Value), "cuMemsetD8Async");
    }

    /// <summary>Frees the device memory (cuMemFree_v2 waits for work already queued on it).</summary>
    public void Dispose() => _memory.Dispose();

    private static long ByteCount(int length, int elementSize) => (long)length * elementSize;

    private void CheckRange(long byteOffset, long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(byteOffset);
        if (bytes > ByteLength - byteOffset)
        {
            throw new ArgumentException(
                $"{bytes} bytes at offset {byteOffset} do not fit in a buffer of {ByteLength} bytes");
        }
    }

    private void CheckSameContext(CudaStream stream)
    {
        // A stream of another device would make the driver fail with a bare CUDA_ERROR_INVALID_HANDLE (or
        // copy through the wrong engine); say which objects were mixed up instead.
        if (stream.SafeHandle.Context.DangerousGetHandle() != _memory.Context.DangerousGetHandle())
        {
            throw new ArgumentException(
                $"the stream belongs to device {stream.Device.Ordinal}, the buffer to device {Device.Ordinal}",
                nameof(stream));
        }
    }
}
