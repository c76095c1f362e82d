// CudaDriverMethods.cs: the raw CUDA driver API (libcuda.so.1 / nvcuda.dll), bound through function pointers.
using System.Runtime.InteropServices;

namespace SharpInfer.Interop.Cuda;

/// <summary>
/// Every CUDA driver entry point SharpInfer uses, under its exact exported name.
/// </summary>
/// <remarks>
/// This binding does not use <c>[LibraryImport]</c>, unlike <c>NativeMethods</c>. The driver is optional
/// (CPU-only machines have none) and the assembly's DllImport resolver belongs to libsharpinfer's loader,
/// so instead the driver is opened once with <see cref="NativeLibrary.TryLoad(string, out nint)"/>, each
/// export is looked up with <see cref="NativeLibrary.TryGetExport"/>, and calls go through the
/// <c>delegate* unmanaged</c> table below. A missing library or symbol therefore never surfaces as
/// <see cref="DllNotFoundException"/> or <see cref="EntryPointNotFoundException"/>: <see cref="CudaDriver.Probe"/>
/// reports it, and an unresolved entry point returns a status instead of being called.
/// <para>
/// Only blittable types cross: handles are <see cref="nint"/>, <c>CUdeviceptr</c> is <see cref="ulong"/>,
/// <c>size_t</c> is <see cref="nuint"/>, <c>CUdevice</c> is <see cref="int"/>, strings are UTF-8 <c>byte*</c>.
/// Where the driver exports a versioned symbol (<c>_v2</c>), that is the one bound, as cuda.h's macros do.
/// </para>
/// </remarks>
internal static unsafe partial class CudaDriverMethods
{
    // cuda.h flag values used by the managed wrappers.
    internal const uint CU_STREAM_DEFAULT = 0x0;
    internal const uint CU_STREAM_NON_BLOCKING = 0x1;
    internal const uint CU_EVENT_DEFAULT = 0x0;
    internal const uint CU_EVENT_BLOCKING_SYNC = 0x1;
    internal const uint CU_EVENT_DISABLE_TIMING = 0x2;

    /// <summary>The library name that was opened, or the first one tried when none could be.</summary>
    internal static readonly string LibraryName;

    /// <summary>dlopen/LoadLibrary handle; 0 when the driver is not installed. Never freed: the process keeps the driver.</summary>
    internal static readonly nint LibraryHandle;

    /// <summary>First required export the loaded driver lacks (too old for this binding), or null.</summary>
    internal static string? MissingExport { get; private set; }

    /// <summary>True when the driver library is open and every required export resolved.</summary>
    internal static bool IsLoaded => LibraryHandle != 0 && MissingExport is null;

    private static readonly delegate* unmanaged<CUresult, byte**, CUresult> s_cuGetErrorName;
    private static readonly delegate* unmanaged<CUresult, byte**, CUresult> s_cuGetErrorString;
    private static readonly delegate* unmanaged<uint, CUresult> s_cuInit;
    private static readonly delegate* unmanaged<int*, CUresult> s_cuDriverGetVersion;

    private static readonly delegate* unmanaged<int*, CUresult> s_cuDeviceGetCount;
    private static readonly delegate* unmanaged<int*, int, CUresult> s_cuDeviceGet;
    private static readonly delegate* unmanaged<byte*, int, int, CUresult> s_cuDeviceGetName;
    private static readonly delegate* unmanaged<int*, CUdevice_attribute, int, CUresult> s_cuDeviceGetAttribute;
    private static readonly delegate* unmanaged<nuint*, int, CUresult> s_cuDeviceTotalMem_v2;

    private static readonly delegate* unmanaged<nint*, int, CUresult> s_cuDevicePrimaryCtxRetain;
    private static readonly delegate* unmanaged<int, CUresult> s_cuDevicePrimaryCtxRelease_v2;
    private static readonly delegate* unmanaged<int, uint*, int*, CUresult> s_cuDevicePrimaryCtxGetState;
    private static readonly delegate* unmanaged<nint*, uint, int, CUresult> s_cuCtxCreate_v2;
    private static readonly delegate* unmanaged<nint, CUresult> s_cuCtxDestroy_v2;
    private static readonly delegate* unmanaged<nint, CUresult> s_cuCtxSetCurrent;
    private static readonly delegate* unmanaged<nint*, CUresult> s_cuCtxGetCurrent;
    private static readonly delegate* unmanaged<nint, CUresult> s_cuCtxPushCurrent_v2;
    private static readonly delegate* unmanaged<nint*, CUresult> s_cuCtxPopCurrent_v2;
    private static readonly delegate* unmanaged<CUresult> s_cuCtxSynchronize;

    private static readonly delegate* unmanaged<ulong*, nuint, CUresult> s_cuMemAlloc_v2;
    private static readonly delegate* unmanaged<ulong, CUresult> s_cuMemFree_v2;
    private static readonly delegate* unmanaged<nuint*, nuint*, CUresult> s_cuMemGetInfo_v2;
    private static readonly delegate* unmanaged<ulong, void*, nuint, CUresult> s_cuMemcpyHtoD_v2;
    private static readonly delegate* unmanaged<void*, ulong, nuint, CUresult> s_cuMemcpyDtoH_v2;
    private static readonly delegate* unmanaged<ulong, ulong, nuint, CUresult> s_cuMemcpyDtoD_v2;
    private static readonly delegate* unmanaged<ulong, void*, nuint, nint, CUresult> s_cuMemcpyHtoDAsync_v2;
    private static readonly delegate* unmanaged<void*, ulong, nuint, nint, CUresult> s_cuMemcpyDtoHAsync_v2;
    private static readonly delegate* unmanaged<ulong, ulong, nuint, nint, CUresult> s_cuMemcpyDtoDAsync_v2;
    private static readonly delegate* unmanaged<ulong, byte, nuint, CUresult> s_cuMemsetD8_v2;
    private static readonly delegate* unmanaged<ulong, byte, nuint, nint, CUresult> s_cuMemsetD8Async;

    private static readonly delegate* unmanaged<nint*, uint, CUresult> s_cuStreamCreate;
    private static readonly delegate* unmanaged<nint, CUresult> s_cuStreamSynchronize;
    private static readonly delegate* unmanaged<nint, CUresult> s_cuStreamQuery;
    private static readonly delegate* unmanaged<nint, nint, uint, CUresult> s_cuStreamWaitEvent;
    private static readonly delegate* unmanaged<nint, CUresult> s_cuStreamDestroy_v2;

    private static readonly delegate* unmanaged<nint*, uint, CUresult> s_cuEventCreate;
    private static readonly delegate* unmanaged<nint, nint, CUresult> s_cuEventRecord;
    private static readonly delegate* unmanaged<nint, CUresult> s_cuEventSynchronize;
    private static readonly delegate* unmanaged<nint, CUresult> s_cuEventQuery;
    private static readonly delegate* unmanaged<float*, nint, nint, CUresult> s_cuEventElapsedTime;
    private static readonly delegate* unmanaged<nint, CUresult> s_cuEventDestroy_v2;

    static CudaDriverMethods()
    {
        // A type initializer that throws would poison every later call with TypeInitializationException,
        // so nothing here may throw: TryLoad/TryGetExport only report.
        LibraryName = DriverLibraryNames.Length > 0 ? DriverLibraryNames[0] : "libcuda";
        foreach (string name in DriverLibraryNames)
        {
            if (NativeLibrary.TryLoad(name, out nint handle))
            {
                LibraryHandle = handle;
                LibraryName = name;
                break;
            }
        }
        if (LibraryHandle == 0)
        {
            return;
        }

        s_cuGetErrorName = (delegate* unmanaged<CUresult, byte**, CUresult>)Export("cuGetErrorName", required: true);
        s_cuGetErrorString = (delegate* unmanaged<CUresult, byte**, CUresult>)Export("cuGetErrorString", required: true);
        s_cuInit = (delegate* unmanaged<uint, CUresult>)Export("cuInit", required: true);
        s_cuDriverGetVersion = (delegate* unmanaged<int*, CUresult>)Export("cuDriverGetVersion", required: true);

        s_cuDeviceGetCount = (delegate* unmanaged<int*, CUresult>)Export("cuDeviceGetCount", required: true);
        s_cuDeviceGet = (delegate* unmanaged<int*, int, CUresult>)Export("cuDeviceGet", required: true);
        s_cuDeviceGetName = (delegate* unmanaged<byte*, int, int, CUresult>)Export("cuDeviceGetName", required: true);
        s_cuDeviceGetAttribute = (delegate* unmanaged<int*, CUdevice_attribute, int, CUresult>)Export("cuDeviceGetAttribute", required: true);
        s_cuDeviceTotalMem_v2 = (delegate* unmanaged<nuint*, int, CUresult>)Export("cuDeviceTotalMem_v2", required: true);

        s_cuDevicePrimaryCtxRetain = (delegate* unmanaged<nint*, int, CUresult>)Export("cuDevicePrimaryCtxRetain", required: true);
        s_cuDevicePrimaryCtxRelease_v2 = (delegate* unmanaged<int, CUresult>)Export("cuDevicePrimaryCtxRelease_v2", required: true);
        s_cuDevicePrimaryCtxGetState = (delegate* unmanaged<int, uint*, int*, CUresult>)Export("cuDevicePrimaryCtxGetState", required: false);
        // Non-primary contexts are bound for completeness; the managed API uses primary contexts because
        // the CUDA runtime inside libsharpinfer shares them. CUDA 13 renamed cuCtxCreate, so these are optional.
        s_cuCtxCreate_v2 = (delegate* unmanaged<nint*, uint, int, CUresult>)Export("cuCtxCreate_v2", required: false);
        s_cuCtxDestroy_v2 = (delegate* unmanaged<nint, CUresult>)Export("cuCtxDestroy_v2", required: false);
        s_cuCtxSetCurrent = (delegate* unmanaged<nint, CUresult>)Export("cuCtxSetCurrent", required: true);
        s_cuCtxGetCurrent = (delegate* unmanaged<nint*, CUresult>)Export("cuCtxGetCurrent", required: true);
        s_cuCtxPushCurrent_v2 = (delegate* unmanaged<nint, CUresult>)Export("cuCtxPushCurrent_v2", required: true);
        s_cuCtxPopCurrent_v2 = (delegate* unmanaged<nint*, CUresult>)Export("cuCtxPopCurrent_v2", required: true);
        s_cuCtxSynchronize = (delegate* unmanaged<CUresult>)Export("cuCtxSynchronize", required: true);

        s_cuMemAlloc_v2 = (delegate* unmanaged<ulong*, nuint, CUresult>)Export("cuMemAlloc_v2", required: true);
        s_cuMemFree_v2 = (delegate* unmanaged<ulong, CUresult>)Export("cuMemFree_v2", required: true);
        s_cuMemGetInfo_v2 = (delegate* unmanaged<nuint*, nuint*, CUresult>)Export("cuMemGetInfo_v2", required: true);
        s_cuMemcpyHtoD_v2 = (delegate* unmanaged<ulong, void*, nuint, CUresult>)Export("cuMemcpyHtoD_v2", required: true);
        s_cuMemcpyDtoH_v2 = (delegate* unmanaged<void*, ulong, nuint, CUresult>)Export("cuMemcpyDtoH_v2", required: true);
        s_cuMemcpyDtoD_v2 = (delegate* unmanaged<ulong, ulong, nuint, CUresult>)Export("cuMemcpyDtoD_v2", required: true);
        s_cuMemcpyHtoDAsync_v2 = (delegate* unmanaged<ulong, void*, nuint, nint, CUresult>)Export("cuMemcpyHtoDAsync_v2", required: true);
        s_cuMemcpyDtoHAsync_v2 = (delegate* unmanaged<void*, ulong, nuint, nint, CUresult>)Export("cuMemcpyDtoHAsync_v2", required: true);
        s_cuMemcpyDtoDAsync_v2 = (delegate* unmanaged<ulong, ulong, nuint, nint, CUresult>)Export("cuMemcpyDtoDAsync_v2", required: true);
        s_cuMemsetD8_v2 = (delegate* unmanaged<ulong, byte, nuint, CUresult>)Export("cuMemsetD8_v2", required: true);
        s_cuMemsetD8Async = (delegate* unmanaged<ulong, byte, nuint, nint, CUresult>)Export("cuMemsetD8Async", required: true);

        s_cuStreamCreate = (delegate* unmanaged<nint*, uint, CUresult>)Export("cuStreamCreate", required: true);
        s_cuStreamSynchronize = (delegate* unmanaged<nint, CUresult>)Export("cuStreamSynchronize", required: true);
        s_cuStreamQuery = (delegate* unmanaged<nint, CUresult>)Export("cuStreamQuery", required: true);
        s_cuStreamWaitEvent = (delegate* unmanaged<nint, nint, uint, CUresult>)Export("cuStreamWaitEvent", required: true);
        s_cuStreamDestroy_v2 = (delegate* unmanaged<nint, CUresult>)Export("cuStreamDestroy_v2", required: true);

        s_cuEventCreate = (delegate* unmanaged<nint*, uint, CUresult>)Export("cuEventCreate", required: true);
        s_cuEventRecord = (delegate* unmanaged<nint, nint, CUresult>)Export("cuEventRecord", required: true);
        s_cuEventSynchronize = (delegate* unmanaged<nint, CUresult>)Export("cuEventSynchronize", required: true);
        s_cuEventQuery = (delegate* unmanaged<nint, CUresult>)Export("cuEventQuery", required: true);
        // The unversioned symbol: every driver exports it, while _v2 exists only from CUDA 12.8 on.
        s_cuEventElapsedTime = (delegate* unmanaged<float*, nint, nint, CUresult>)Export("cuEventElapsedTime", required: true);
        s_cuEventDestroy_v2 = (delegate* unmanaged<nint, CUresult>)Export("cuEventDestroy_v2", required: true);
    }

    /// <summary>Names to try, most specific first. libcuda.so is the development symlink, absent on most runtime-only installs.</summary>
    internal static string[] DriverLibraryNames =>
        OperatingSystem.IsWindows() ? ["nvcuda.dll"]
        : OperatingSystem.IsLinux() ? ["libcuda.so.1", "libcuda.so"]
        : [];

    private static nint Export(string name, bool required)
    {
        if (NativeLibrary.TryGetExport(LibraryHandle, name, out nint address))
        {
            return address;
        }
        if (required)
        {
            MissingExport ??= name;
        }
        return 0;
    }

    /// <summary>What an unresolved entry point returns instead of being called through a null pointer.</summary>
    private static CUresult Unresolved =>
        LibraryHandle == 0 ? CUresult.CUDA_ERROR_NOT_INITIALIZED : CUresult.CUDA_ERROR_NOT_FOUND;

    // One wrapper per export, named exactly like it. Each checks for null so that calling
    // without a driver yields a status, not an access violation that would kill the process.

    internal static CUresult cuGetErrorName(CUresult error, byte** pStr)
    { var f = s_cuGetErrorName; return f == null ? Unresolved : f(error, pStr); }

    internal static CUresult cuGetErrorString(CUresult error, byte** pStr)
    { var f = s_cuGetErrorString; return f == null ? Unresolved : f(error, pStr); }

    internal static CUresult cuInit(uint flags)
    { var f = s_cuInit; return f == null ? Unresolved : f(flags); }

    internal static CUresult cuDriverGetVersion(int* driverVersion)
    { var f = s_cuDriverGetVersion; return f == null ? Unresolved : f(driverVersion); }

    internal static CUresult cuDeviceGetCount(int* count)
    { var f = s_cuDeviceGetCount; return f == null ? Unresolved : f(count); }

    internal static CUresult cuDeviceGet(int* device, int ordinal)
    { var f = s_cuDeviceGet; return f == null ? Unresolved : f(device, ordinal); }

    internal static CUresult cuDeviceGetName(byte* name, int len, int dev)
    { var f = s_cuDeviceGetName; return f == null ? Unresolved : f(name, len, dev); }

    internal static CUresult cuDeviceGetAttribute(int* pi, CUdevice_attribute attrib, int dev)
    { var f = s_cuDeviceGetAttribute; return f == null ? Unresolved : f(pi, attrib, dev); }

    internal static CUresult cuDeviceTotalMem_v2(nuint* bytes, int dev)
    { var f = s_cuDeviceTotalMem_v2; return f == null ? Unresolved : f(bytes, dev); }

    internal static CUresult cuDevicePrimaryCtxRetain(nint* pctx, int dev)
    { var f = s_cuDevicePrimaryCtxRetain; return f == null ? Unresolved : f(pctx, dev); }

    internal static CUresult cuDevicePrimaryCtxRelease_v2(int dev)
    { var f = s_cuDevicePrimaryCtxRelease_v2; return f == null ? Unresolved : f(dev); }

    internal static CUresult cuDevicePrimaryCtxGetState(int dev, uint* flags, int* active)
    { var f = s_cuDevicePrimaryCtxGetState; return f == null ? Unresolved : f(dev, flags, active); }

    internal static CUresult cuCtxCreate_v2(nint* pctx, uint flags, int dev)
    { var f = s_cuCtxCreate_v2; return f == null ? Unresolved : f(pctx, flags, dev); }

    internal static CUresult cuCtxDestroy_v2(nint ctx)
    { var f = s_cuCtxDestroy_v2; return f == null ? Unresolved : f(ctx); }

    internal static CUresult cuCtxSetCurrent(nint ctx)
    { var f = s_cuCtxSetCurrent; return f == null ? Unresolved : f(ctx); }

    internal static CUresult cuCtxGetCurrent(nint* pctx)
    { var f = s_cuCtxGetCurrent; return f == null ? Unresolved : f(pctx); }

    internal static CUresult cuCtxPushCurrent_v2(nint ctx)
    { var f = s_cuCtxPushCurrent_v2; return f == null ? Unresolved : f(ctx); }

    internal static CUresult cuCtxPopCurrent_v2(nint* pctx)
    { var f = s_cuCtxPopCurrent_v2; return f == null ? Unresolved : f(pctx); }

    internal static CUresult cuCtxSynchronize()
    { var f = s_cuCtxSynchronize; return f == null ? Unresolved : f(); }

    internal static CUresult cuMemAlloc_v2(ulong* dptr, nuint bytesize)
    { var f = s_cuMemAlloc_v2; return f == null ? Unresolved : f(dptr, bytesize); }

    internal static CUresult cuMemFree_v2(ulong dptr)
    { var f = s_cuMemFree_v2; return f == null ? Unresolved : f(dptr); }

    internal static CUresult cuMemGetInfo_v2(nuint* free, nuint* total)
    { var f = s_cuMemGetInfo_v2; return f == null ? Unresolved : f(free, total); }

    internal static CUresult cuMemcpyHtoD_v2(ulong dstDevice, void* srcHost, nuint byteCount)
    { var f = s_cuMemcpyHtoD_v2; return f == null ? Unresolved : f(dstDevice, srcHost, byteCount); }

    internal static CUresult cuMemcpyDtoH_v2(void* dstHost, ulong srcDevice, nuint byteCount)
    { var f = s_cuMemcpyDtoH_v2; return f == null ? Unresolved : f(dstHost, srcDevice, byteCount); }

    internal static CUresult cuMemcpyDtoD_v2(ulong dstDevice, ulong srcDevice, nuint byteCount)
    { var f = s_cuMemcpyDtoD_v2; return f == null ? Unresolved : f(dstDevice, srcDevice, byteCount); }

    internal static CUresult cuMemcpyHtoDAsync_v2(ulong dstDevice, void* srcHost, nuint byteCount, nint hStream)
    { var f = s_cuMemcpyHtoDAsync_v2; return f == null ? Unresolved : f(dstDevice, srcHost, byteCount, hStream); }

    internal static CUresult cuMemcpyDtoHAsync_v2(void* dstHost, ulong srcDevice, nuint byteCount, nint hStream)
    { var f = s_cuMemcpyDtoHAsync_v2; return f == null ? Unresolved : f(dstHost, srcDevice, byteCount, hStream); }

    internal static CUresult cuMemcpyDtoDAsync_v2(ulong dstDevice, ulong srcDevice, nuint byteCount, nint hStream)
    { var f = s_cuMemcpyDtoDAsync_v2; return f == null ? Unresolved : f(dstDevice, srcDevice, byteCount, hStream); }

    internal static CUresult cuMemsetD8_v2(ulong dstDevice, byte value, nuint count)
    { var f = s_cuMemsetD8_v2; return f == null ? Unresolved : f(dstDevice, value, count); }

    internal static CUresult cuMemsetD8Async(ulong dstDevice, byte value, nuint count, nint hStream)
    { var f = s_cuMemsetD8Async; return f == null ? Unresolved : f(dstDevice, value, count, hStream); }

    internal static CUresult cuStreamCreate(nint* phStream, uint flags)
    { var f = s_cuStreamCreate; return f == null ? Unresolved : f(phStream, flags); }

    internal static CUresult cuStreamSynchronize(nint hStream)
    { var f = s_cuStreamSynchronize; return f == null ? Unresolved : f(hStream); }

    internal static CUresult cuStreamQuery(nint hStream)
    { var f = s_cuStreamQuery; return f == null ? Unresolved : f(hStream); }

    internal static CUresult cuStreamWaitEvent(nint hStream, nint hEvent, uint flags)
    { var f = s_cuStreamWaitEvent; return f == null ? Unresolved : f(hStream, hEvent, flags); }

    internal static CUresult cuStreamDestroy_v2(nint hStream)
    { var f = s_cuStreamDestroy_v2; return f == null ? Unresolved : f(hStream); }

    internal static CUresult cuEventCreate(nint* phEvent, uint flags)
    { var f = s_cuEventCreate; return f == null ? Unresolved : f(phEvent, flags); }

    internal static CUresult cuEventRecord(nint hEvent, nint hStream)
    { var f = s_cuEventRecord; return f == null ? Unresolved : f(hEvent, hStream); }

    internal static CUresult cuEventSynchronize(nint hEvent)
    { var f = s_cuEventSynchronize; return f == null ? Unresolved : f(hEvent); }

    internal static CUresult cuEventQuery(nint hEvent)
    { var f = s_cuEventQuery; return f == null ? Unresolved : f(hEvent); }

    internal static CUresult cuEventElapsedTime(float* pMilliseconds, nint hStart, nint hEnd)
    { var f = s_cuEventElapsedTime; return f == null ? Unresolved : f(pMilliseconds, hStart, hEnd); }

    internal static CUresult cuEventDestroy_v2(nint hEvent)
    { var f = s_cuEventDestroy_v2; return f == null ? Unresolved : f(hEvent); }
}

/// <summary>The <c>CUdevice_attribute</c> values SharpInfer reads (cuda.h numbering).</summary>
#pragma warning disable CA1707 // Underscores: the names are the driver's, on purpose.
internal enum CUdevice_attribute : int
{
    CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1,
    CU_DEVICE_ATTRIBUTE_WARP_SIZE = 10,
    CU_DEVICE_ATTRIBUTE_CLOCK_RATE = 13,
    CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    CU_DEVICE_ATTRIBUTE_INTEGRATED = 18,
    CU_DEVICE_ATTRIBUTE_PCI_BUS_ID = 33,
    CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID = 34,
    CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE = 36,
    CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH = 37,
    CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38,
    CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR = 39,
    CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING = 41,
    CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID = 50,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
    CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR = 81,
    CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
}
#pragma warning restore CA1707
