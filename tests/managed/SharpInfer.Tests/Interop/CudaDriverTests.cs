// CudaDriverTests.cs: the CUDA driver binding without a GPU: probing never throws, and the binding's shape is sound.
using System.Reflection;
using SharpInfer.Interop.Cuda;

namespace SharpInfer.Tests.Interop;

/// <summary>
/// Tests that touch CUDA objects share one non-parallel collection, so the global live-object
/// counters they assert on are not moved by another test running at the same time.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CudaCollection
{
    public const string Name = "CUDA";
}

[Collection(CudaCollection.Name)]
public sealed class CudaDriverTests
{
    private const string NoDeviceSkip = "a CUDA device is present: the no-device behaviour cannot be observed";

    [Fact]
    public void Probe_never_throws_and_is_consistent()
    {
        CudaAvailability first = CudaDriver.Probe();
        CudaAvailability second = CudaDriver.Probe();

        Assert.Same(first, second);
        Assert.False(string.IsNullOrWhiteSpace(first.Reason));
        if (first.IsAvailable)
        {
            Assert.True(first.DeviceCount > 0);
            Assert.True(first.DriverVersion > 0);
        }
        else
        {
            Assert.StartsWith("no CUDA device", first.Reason);
            Assert.Equal(0, first.DeviceCount);
        }
    }

    [SkippableFact]
    public void Probe_without_a_device_reports_why()
    {
        CudaAvailability availability = CudaDriver.Probe();
        Skip.If(availability.IsAvailable, NoDeviceSkip);

        Assert.False(availability.IsAvailable);
        Assert.StartsWith("no CUDA device: ", availability.Reason);
        // The reason names what failed: the library, a missing export, or a driver call.
        Assert.True(
            availability.Reason.Contains("not found", StringComparison.Ordinal)
            || availability.Reason.Contains("lacks", StringComparison.Ordinal)
            || availability.Reason.Contains("returned", StringComparison.Ordinal)
            || availability.Reason.Contains("0 devices", StringComparison.Ordinal),
            availability.Reason);
        Assert.Empty(CudaDriver.Devices());
    }

    [SkippableFact]
    public void Opening_a_device_without_one_throws_CudaUnavailableException()
    {
        CudaAvailability availability = CudaDriver.Probe();
        Skip.If(availability.IsAvailable, NoDeviceSkip);

        var ex = Assert.Throws<CudaUnavailableException>(() => new CudaDevice(0));
        Assert.StartsWith("no CUDA device", ex.Message);
        Assert.Equal(availability.Reason, ex.Message);
        Assert.NotEqual(CUresult.CUDA_SUCCESS, ex.Result);
        Assert.IsAssignableFrom<CudaException>(ex);
        Assert.Equal(0, CudaLiveObjects.Total);
    }

    [Fact]
    public void Negative_ordinal_is_an_argument_error()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new CudaDevice(-1));
    }

    [SkippableFact]
    public void Unresolved_entry_points_return_a_status_instead_of_crashing()
    {
        Skip.If(CudaDriverMethods.IsLoaded, "the driver is loaded, so every required entry point resolved");

        // Without a driver every pointer is null; the wrappers must answer rather than jump to address 0.
        CUresult result = CudaDriverMethods.cuInit(0);
        Assert.NotEqual(CUresult.CUDA_SUCCESS, result);
    }

    [Fact]
    public void CudaException_names_the_call_and_the_error()
    {
        var ex = new CudaException(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "cuMemAlloc_v2");

        Assert.Equal(CUresult.CUDA_ERROR_OUT_OF_MEMORY, ex.Result);
        Assert.Equal("CUDA_ERROR_OUT_OF_MEMORY", ex.ErrorName);
        Assert.StartsWith("cuMemAlloc_v2 failed: CUDA_ERROR_OUT_OF_MEMORY (", ex.Message);
        Assert.False(string.IsNullOrWhiteSpace(ex.ErrorDescription));
    }

    [Fact]
    public void CudaException_names_codes_this_enum_does_not_list()
    {
        var ex = new CudaException((CUresult)123456, "cuSomething");
        Assert.Contains("123456", ex.ErrorName);
    }

    [Fact]
    public void CUresult_values_match_cuda_h()
    {
        Assert.Equal(0, (int)CUresult.CUDA_SUCCESS);
        Assert.Equal(2, (int)CUresult.CUDA_ERROR_OUT_OF_MEMORY);
        Assert.Equal(3, (int)CUresult.CUDA_ERROR_NOT_INITIALIZED);
        Assert.Equal(35, (int)CUresult.CUDA_ERROR_INSUFFICIENT_DRIVER);
        Assert.Equal(100, (int)CUresult.CUDA_ERROR_NO_DEVICE);
        Assert.Equal(600, (int)CUresult.CUDA_ERROR_NOT_READY);
        Assert.Equal(999, (int)CUresult.CUDA_ERROR_UNKNOWN);
        Assert.Equal(sizeof(int), System.Runtime.CompilerServices.Unsafe.SizeOf<CUresult>());
    }

    [Fact]
    public void Compute_capabilities_order_by_sm_version()
    {
        var ampere = new CudaComputeCapability(8, 0);
        var ada = new CudaComputeCapability(8, 9);
        var hopper = new CudaComputeCapability(9, 0);

        Assert.True(ampere < ada && ada < hopper);
        Assert.True(hopper >= ampere);
        Assert.Equal(90, hopper.SmVersion);
        Assert.Equal("8.9", ada.ToString());
    }

    [Fact]
    public void Bandwidth_estimate_is_double_data_rate_times_bus_width()
    {
        // An H100 SXM reports a 2619 MHz memory clock on a 5120-bit bus: about 3.35 TB/s.
        var h100 = new CudaDeviceInfo(0, "H100", new(9, 0), 132, 80L << 30, MemoryClockKHz: 2_619_000, MemoryBusWidthBits: 5120);
        Assert.Equal(2_619_000L * 1000 * 2 * 640, h100.MemoryBandwidthBytesPerSecond);

        var unknown = h100 with { MemoryClockKHz = 0 };
        Assert.Equal(0, unknown.MemoryBandwidthBytesPerSecond);
    }
}

/// <summary>The binding's shape, checked by reflection (the binding itself uses none, for NativeAOT).</summary>
public sealed class CudaDriverBindingTests
{
    private static readonly BindingFlags Statics = BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public;

    private static FieldInfo[] FunctionPointerFields() =>
        typeof(CudaDriverMethods).GetFields(Statics).Where(f => f.FieldType.IsFunctionPointer).ToArray();

    private static MethodInfo[] EntryPoints() =>
        typeof(CudaDriverMethods).GetMethods(Statics)
            .Where(m => m.Name.StartsWith("cu", StringComparison.Ordinal))
            .ToArray();

    [Fact]
    public void Every_function_pointer_is_unmanaged_and_blittable()
    {
        FieldInfo[] fields = FunctionPointerFields();
        Assert.True(fields.Length >= 40, $"only {fields.Length} function pointers found");

        foreach (FieldInfo field in fields)
        {
            Type type = field.FieldType;
            Assert.True(type.IsUnmanagedFunctionPointer, $"{field.Name} is not delegate* unmanaged");
            Assert.True(type.GetFunctionPointerReturnType() == typeof(CUresult), $"{field.Name} does not return CUresult");
            foreach (Type parameter in type.GetFunctionPointerParameterTypes())
            {
                Assert.True(IsBlittable(parameter), $"{field.Name} takes non-blittable {parameter}");
            }
        }
    }

    [Fact]
    public void Every_entry_point_returns_CUresult_and_matches_its_pointer()
    {
        MethodInfo[] methods = EntryPoints();
        var fields = FunctionPointerFields().ToDictionary(f => f.Name);
        Assert.Equal(fields.Count, methods.Length);

        foreach (MethodInfo method in methods)
        {
            Assert.Equal(typeof(CUresult), method.ReturnType);
            Assert.True(fields.TryGetValue("s_" + method.Name, out FieldInfo? field), $"{method.Name} has no s_{method.Name} pointer");
            Type[] pointerParameters = field!.FieldType.GetFunctionPointerParameterTypes();
            Type[] methodParameters = method.GetParameters().Select(p => p.ParameterType).ToArray();
            Assert.Equal(pointerParameters, methodParameters);
        }
    }

    [Fact]
    public void Versioned_symbols_are_bound_where_the_driver_has_them()
    {
        // cuda.h maps these to _v2 (64-bit sizes, fixed semantics); binding the old names would be a silent bug.
        string[] names = EntryPoints().Select(m => m.Name).ToArray();
        foreach (string versioned in new[]
        {
            "cuCtxCreate_v2", "cuCtxDestroy_v2", "cuMemAlloc_v2", "cuMemFree_v2", "cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2",
            "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2", "cuMemsetD8_v2", "cuMemGetInfo_v2", "cuDeviceTotalMem_v2",
            "cuStreamDestroy_v2", "cuEventDestroy_v2", "cuDevicePrimaryCtxRelease_v2", "cuCtxPushCurrent_v2", "cuCtxPopCurrent_v2",
        })
        {
            Assert.Contains(versioned, names);
            Assert.DoesNotContain(versioned[..^3], names);
        }
    }

    private static bool IsBlittable(Type type) =>
        type.IsPointer
        || (type.IsPrimitive && type != typeof(bool) && type != typeof(char))
        || (type.IsEnum && IsBlittable(Enum.GetUnderlyingType(type)));
}
