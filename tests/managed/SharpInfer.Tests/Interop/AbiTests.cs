// AbiTests.cs: the managed mirror of the C ABI: struct layouts, import signatures, status
// mapping, live-handle counts, and the cuda backend reporting "no device" cleanly.
using System.Reflection;
using System.Runtime.CompilerServices;
using SharpInfer.Interop;

namespace SharpInfer.Tests.Interop;

public class AbiTests
{
    [Fact]
    public void StructSizes_MatchNativeStaticAsserts()
    {
        // The same figures are static_asserted in native/src/api/abi_layout.cpp.
        Assert.Equal(16, Unsafe.SizeOf<SiContextOptions>());
        Assert.Equal(40, Unsafe.SizeOf<SiEmbeddingParams>());
        Assert.Equal(56, Unsafe.SizeOf<SiRmsNormParams>());
        Assert.Equal(64, Unsafe.SizeOf<SiMatmulParams>());
        Assert.Equal(56, Unsafe.SizeOf<SiRopeParams>());
        Assert.Equal(80, Unsafe.SizeOf<SiAttentionParams>());
        Assert.Equal(56, Unsafe.SizeOf<SiSwigluParams>());
        Assert.Equal(32, Unsafe.SizeOf<SiAddParams>());
        Assert.Equal(48, Unsafe.SizeOf<SiSoftmaxParams>());
        Assert.Equal(32, Unsafe.SizeOf<SiArgmaxParams>());
        Assert.Equal(56, Unsafe.SizeOf<SiPagedKv>());
        Assert.Equal(104, Unsafe.SizeOf<SiKvWriteParams>());
        Assert.Equal(8, Unsafe.SizeOf<SiAttentionVariant>());
        Assert.Equal(160, Unsafe.SizeOf<SiPagedAttentionParams>());
        Assert.Equal(88, Unsafe.SizeOf<SiQmatmulParams>());
        Assert.Equal(88, Unsafe.SizeOf<SiSparseMatmulParams>());
    }

    [Fact]
    public void SparseMatmulParams_FieldOffsets_MatchNative()
    {
        // native/src/api/abi_layout.cpp asserts values_dtype at 76 and format at 80.
        Assert.Equal(76, (int)System.Runtime.InteropServices.Marshal.OffsetOf<SiSparseMatmulParams>(nameof(SiSparseMatmulParams.ValuesDType)));
        Assert.Equal(80, (int)System.Runtime.InteropServices.Marshal.OffsetOf<SiSparseMatmulParams>(nameof(SiSparseMatmulParams.Format)));
        Assert.Equal(48, (int)System.Runtime.InteropServices.Marshal.OffsetOf<SiSparseMatmulParams>(nameof(SiSparseMatmulParams.XStride)));
        Assert.Equal(0, (int)SiSparseFormat.TwoFour);
        Assert.Equal(1, (int)SiSparseFormat.Bitmask);
    }

    [Fact]
    public void EveryImport_ReturnsStatus_AndIsNamedAfterItsExport()
    {
        var imports = typeof(NativeMethods).GetMethods(BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
            .Where(m => m.Name.StartsWith("si_", StringComparison.Ordinal)).ToList();
        Assert.True(imports.Count >= 17, $"found only {imports.Count} imports");
        foreach (var method in imports)
            Assert.True(method.ReturnType == typeof(SiStatus), $"{method.Name} returns {method.ReturnType.Name}, not SiStatus");
    }

    [Fact]
    public void LibraryLoads_WithMatchingAbi()
    {
        NativeLibraryLoader.EnsureLoaded();
        Assert.Contains($"sharpinfer abi {NativeMethods.AbiVersion}", NativeContext.BuildInfo);
        Assert.True(NativeContext.IsCompiled(SiBackend.Cpu));
    }

    [Fact]
    public unsafe void BadShape_BecomesTypedException_WithNativeMessage()
    {
        using var ctx = new NativeContext(SiBackend.Cpu, 1);
        using var buffer = new SharpInfer.Tensors.HostBuffer<float>(3);
        float* p = buffer.Pointer;
        var e = Assert.Throws<NativeArgumentException>(() =>
            ctx.Matmul(new SiMatmulParams { X = p, W = p + 1, Y = p + 2, M = 1, N = 1, K = 0, XStride = 1, YStride = 1 }));
        Assert.Contains("si_matmul", e.Message);
        var u = Assert.Throws<UnsupportedOperationException>(() =>
            ctx.Matmul(new SiMatmulParams { X = p, W = p + 1, Y = p + 2, M = 1, N = 1, K = 1, XStride = 1, YStride = 1, WDType = SiDType.I8 }));
        Assert.Contains("dtype", u.Message);
    }

    [Fact]
    public void Contexts_AreCountedAndReleased()
    {
        int before = NativeContext.LiveCount;
        var a = new NativeContext(SiBackend.Cpu, 1);
        var b = new NativeContext(SiBackend.Ref);
        Assert.Equal(before + 2, NativeContext.LiveCount);
        a.Dispose();
        b.Dispose();
        b.Dispose();  // idempotent
        Assert.Equal(before, NativeContext.LiveCount);
    }

    [SkippableFact]
    public void CudaContext_WithoutDevice_ReportsNoDevice()
    {
        Skip.If(SharpInfer.Interop.Cuda.CudaDriver.Probe().IsAvailable, "a CUDA device is present: this test covers machines without one");
        if (!NativeContext.IsCompiled(SiBackend.Cuda))
        {
            var notCompiled = Assert.Throws<BackendNotCompiledException>(() => new NativeContext(SiBackend.Cuda));
            Assert.Contains("not compiled", notCompiled.Message);
            return;
        }
        var e = Assert.Throws<NoDeviceException>(() => new NativeContext(SiBackend.Cuda));
        Assert.Contains("no CUDA device", e.Message);
    }
}
