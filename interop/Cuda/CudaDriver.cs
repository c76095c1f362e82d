// CudaDriver.cs: asks whether a CUDA driver and device are present, and lists devices, without ever throwing for "no GPU".
using System.Runtime.InteropServices;
using static SharpInfer.Interop.Cuda.CudaDriverMethods;

namespace SharpInfer.Interop.Cuda;

/// <summary>
/// The outcome of <see cref="CudaDriver.Probe"/>. When <see cref="IsAvailable"/> is false,
/// <see cref="Reason"/> starts with "no CUDA device" and says what is missing.
/// </summary>
/// <param name="IsAvailable">A driver loaded, initialized, and reports at least one device.</param>
/// <param name="DeviceCount">Visible devices (after CUDA_VISIBLE_DEVICES); 0 when unavailable.</param>
/// <param name="DriverVersion">The driver's CUDA version as cuda.h encodes it (1000*major + 10*minor), or 0 when no driver could be asked.</param>
/// <param name="Reason">A one-line explanation fit for a user.</param>
public sealed record CudaAvailability(bool IsAvailable, int DeviceCount, int DriverVersion, string Reason)
{
    /// <summary>The driver status behind an unavailability, when there is one; what CudaUnavailableException carries.</summary>
    internal CUresult FailureResult { get; init; } = CUresult.CUDA_SUCCESS;
}

/// <summary>An SM version such as 8.6 or 9.0; ordered so that <c>cc &gt;= new(8, 0)</c> reads as "Ampere or newer".</summary>
public readonly record struct CudaComputeCapability(int Major, int Minor) : IComparable<CudaComputeCapability>
{
    /// <summary>The two-digit form used by nvcc's sm_XX names, e.g. 90.</summary>
    public int SmVersion => Major * 10 + Minor;

    public int CompareTo(CudaComputeCapability other) => SmVersion.CompareTo(other.SmVersion);

    public static bool operator <(CudaComputeCapability left, CudaComputeCapability right) => left.CompareTo(right) < 0;
    public static bool operator >(CudaComputeCapability left, CudaComputeCapability right) => left.CompareTo(right) > 0;
    public static bool operator <=(CudaComputeCapability left, CudaComputeCapability right) => left.CompareTo(right) <= 0;
    public static bool operator >=(CudaComputeCapability left, CudaComputeCapability right) => left.CompareTo(right) >= 0;

    public override string ToString() => $"{Major}.{Minor}";
}

/// <summary>What the driver says about one device, read without creating a context.</summary>
/// <param name="Ordinal">The device's index among the visible devices.</param>
/// <param name="Name">The marketing name, e.g. "NVIDIA H100 80GB HBM3".</param>
/// <param name="ComputeCapability">The SM version.</param>
/// <param name="MultiprocessorCount">Streaming multiprocessors.</param>
/// <param name="TotalMemoryBytes">Device memory.</param>
/// <param name="MemoryClockKHz">Peak memory clock, or 0 when the driver does not report it.</param>
/// <param name="MemoryBusWidthBits">Global memory bus width, or 0 when the driver does not report it.</param>
public sealed record CudaDeviceInfo(
    int Ordinal,
    string Name,
    CudaComputeCapability ComputeCapability,
    int MultiprocessorCount,
    long TotalMemoryBytes,
    int MemoryClockKHz,
    int MemoryBusWidthBits)
{
    /// <summary>
    /// Theoretical peak: clock x 2 (double data rate) x bus width in bytes. An estimate for planning
    /// (roofline, batch sizing), not a measurement; 0 when clock or width is unknown.
    /// </summary>
    public long MemoryBandwidthBytesPerSecond =>
        MemoryClockKHz <= 0 || MemoryBusWidthBits <= 0
            ? 0
            : MemoryClockKHz * 1000L * 2L * (MemoryBusWidthBits / 8);
}

/// <summary>Entry point of the CUDA driver binding: is there a GPU, and which.</summary>
public static class CudaDriver
{
    // cuInit's outcome is fixed for the life of the process (and CUDA does not hot-plug), so one probe serves all.
    private static readonly Lazy<CudaAvailability> s_probe = new(ProbeOnce, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Loads and initializes the driver once and reports whether a device can be used. Never throws:
    /// a missing driver, an old driver or no GPU all come back as <c>IsAvailable == false</c> with a reason.
    /// </summary>
    public static CudaAvailability Probe() => s_probe.Value;

    /// <summary>Every visible device; empty when <see cref="Probe"/> says unavailable.</summary>
    /// <exception cref="CudaException">The driver is present but failed to answer a query.</exception>
    public static IReadOnlyList<CudaDeviceInfo> Devices()
    {
        CudaAvailability availability = Probe();
        if (!availability.IsAvailable)
        {
            return [];
        }
        var devices = new CudaDeviceInfo[availability.DeviceCount];
        for (int ordinal = 0; ordinal < devices.Length; ordinal++)
        {
            devices[ordinal] = QueryDevice(ordinal);
        }
        return devices;
    }

    /// <summary>Throws <see cref="CudaUnavailableException"/> unless a driver and device <paramref name="ordinal"/> exist.</summary>
    internal static void EnsureAvailable(int ordinal)
    {
        CudaAvailability availability = Probe();
        if (!availability.IsAvailable)
        {
            throw new CudaUnavailableException(availability.Reason, availability.FailureResult);
        }
        if (ordinal >= availability.DeviceCount)
        {
            throw new CudaUnavailableException(
                $"no CUDA device {ordinal}: only {availability.DeviceCount} device(s) visible{VisibleDevicesNote()}",
                CUresult.CUDA_ERROR_INVALID_DEVICE);
        }
    }

    internal static unsafe CudaDeviceInfo QueryDevice(int ordinal)
    {
        int device;
        CudaException.ThrowIfFailed(cuDeviceGet(&device, ordinal), "cuDeviceGet");

        const int NameCapacity = 256;
        byte* name = stackalloc byte[NameCapacity];
        CudaException.ThrowIfFailed(cuDeviceGetName(name, NameCapacity, device), "cuDeviceGetName");

        nuint totalMemory;
        CudaException.ThrowIfFailed(cuDeviceTotalMem_v2(&totalMemory, device), "cuDeviceTotalMem_v2");

        return new CudaDeviceInfo(
            Ordinal: ordinal,
            Name: Marshal.PtrToStringUTF8((nint)name) ?? "",
            ComputeCapability: new CudaComputeCapability(
                Attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                Attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)),
            MultiprocessorCount: Attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
            TotalMemoryBytes: (long)totalMemory,
            // NVIDIA has been deprecating clock attributes; a driver that stops reporting them should
            // cost us a bandwidth estimate, not the device.
            MemoryClockKHz: AttributeOrZero(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE),
            MemoryBusWidthBits: AttributeOrZero(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH));
    }

    internal static unsafe int Attribute(int device, CUdevice_attribute attribute)
    {
        int value;
        CudaException.ThrowIfFailed(cuDeviceGetAttribute(&value, attribute, device), "cuDeviceGetAttribute");
        return value;
    }

    private static unsafe int AttributeOrZero(int device, CUdevice_attribute attribute)
    {
        int value;
        return cuDeviceGetAttribute(&value, attribute, device) == CUresult.CUDA_SUCCESS ? value : 0;
    }

    private static CudaAvailability ProbeOnce()
    {
        try
        {
            return ProbeCore();
        }
        catch (Exception ex)
        {
            // Probe's contract is "never throws": whatever went wrong, the caller gets a reason, not a crash.
            return Unavailable($"no CUDA device: probing the driver failed: {ex.Message}", CUresult.CUDA_ERROR_UNKNOWN);
        }
    }

    private static unsafe CudaAvailability ProbeCore()
    {
        if (DriverLibraryNames.Length == 0)
        {
            return Unavailable(
                $"no CUDA device: the CUDA driver API is not supported on {RuntimeInformation.OSDescription}",
                CUresult.CUDA_ERROR_NOT_INITIALIZED);
        }
        if (LibraryHandle == 0)
        {
            return Unavailable($"no CUDA device: {LibraryName} not found (no NVIDIA driver installed)", CUresult.CUDA_ERROR_NOT_INITIALIZED);
        }
        if (MissingExport is string missing)
        {
            return Unavailable(
                $"no CUDA device: {LibraryName} lacks {missing} (NVIDIA driver too old for SharpInfer; update the driver)",
                CUresult.CUDA_ERROR_NOT_FOUND);
        }

        int version = 0;
        cuDriverGetVersion(&version);

        CUresult init = cuInit(0);
        if (init != CUresult.CUDA_SUCCESS)
        {
            return Unavailable(
                $"no CUDA device: cuInit returned {CudaException.NameOf(init)} ({CudaException.DescriptionOf(init)}){VisibleDevicesNote()}",
                init) with { DriverVersion = version };
        }

        int count;
        CUresult counted = cuDeviceGetCount(&count);
        if (counted != CUresult.CUDA_SUCCESS)
        {
            return Unavailable(
                $"no CUDA device: cuDeviceGetCount returned {CudaException.NameOf(counted)} ({CudaException.DescriptionOf(counted)})",
                counted) with { DriverVersion = version };
        }
        if (count == 0)
        {
            return Unavailable($"no CUDA device: the driver reports 0 devices{VisibleDevicesNote()}", CUresult.CUDA_ERROR_NO_DEVICE)
                with { DriverVersion = version };
        }

        return new CudaAvailability(
            IsAvailable: true,
            DeviceCount: count,
            DriverVersion: version,
            Reason: $"CUDA driver {version / 1000}.{version % 1000 / 10} with {count} device(s)");
    }

    private static CudaAvailability Unavailable(string reason, CUresult result) =>
        new(IsAvailable: false, DeviceCount: 0, DriverVersion: 0, Reason: reason) { FailureResult = result };

    /// <summary>CUDA_VISIBLE_DEVICES hides devices silently; naming it saves a confused user a search.</summary>
    private static string VisibleDevicesNote()
    {
        string? visible = Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES");
        return visible is null ? "" : $"; CUDA_VISIBLE_DEVICES is '{visible}'";
    }
}
