// CudaGpuTests.cs: the CUDA driver binding on a real GPU; every test skips, naming why, where there is none.
using SharpInfer.Interop.Cuda;

namespace SharpInfer.Tests.Interop;

[Collection(CudaCollection.Name)]
public sealed unsafe class CudaGpuTests : IDisposable
{
    private const long MiB = 1L << 20;

    private static void SkipWithoutGpu()
    {
        CudaAvailability availability = CudaDriver.Probe();
        Skip.IfNot(availability.IsAvailable, availability.Reason);
    }

    /// <summary>Runs after every test: whatever it made must be back with the driver.</summary>
    public void Dispose()
    {
        Assert.Equal(0, CudaLiveObjects.Contexts);
        Assert.Equal(0, CudaLiveObjects.Buffers);
        Assert.Equal(0, CudaLiveObjects.Streams);
        Assert.Equal(0, CudaLiveObjects.Events);
    }

    [SkippableFact]
    public void Devices_describe_real_hardware()
    {
        SkipWithoutGpu();

        CudaAvailability availability = CudaDriver.Probe();
        IReadOnlyList<CudaDeviceInfo> devices = CudaDriver.Devices();
        Assert.Equal(availability.DeviceCount, devices.Count);
        Assert.True(availability.DriverVersion >= 11000, $"driver version {availability.DriverVersion}");

        for (int i = 0; i < devices.Count; i++)
        {
            CudaDeviceInfo info = devices[i];
            Assert.Equal(i, info.Ordinal);
            Assert.False(string.IsNullOrWhiteSpace(info.Name));
            Assert.True(info.ComputeCapability >= new CudaComputeCapability(3, 0), info.ComputeCapability.ToString());
            Assert.True(info.MultiprocessorCount > 0);
            Assert.True(info.TotalMemoryBytes > 256 * MiB);
        }

        using var device = new CudaDevice(0);
        Assert.Equal(devices[0], device.Info);
        Assert.Equal(1, CudaLiveObjects.Contexts);
    }

    [SkippableFact]
    public void Copy_round_trip_preserves_data_at_odd_sizes_and_offsets()
    {
        SkipWithoutGpu();
        using var device = new CudaDevice(0);

        var random = new Random(1234);
        float[] source = new float[1025];
        for (int i = 0; i < source.Length; i++)
        {
            source[i] = (float)random.NextDouble() - 0.5f;
        }

        using CudaBuffer buffer = device.Allocate(4096 + source.Length * sizeof(float));
        Assert.NotEqual(0UL, buffer.DevicePointer);
        Assert.Equal(0UL, buffer.DevicePointer % 256);

        buffer.CopyFrom<float>(source);
        float[] back = new float[source.Length];
        buffer.CopyTo<float>(back);
        Assert.Equal(source, back);

        // At an offset, and read back as a different element type.
        buffer.CopyFrom<float>(source, byteOffset: 4096);
        byte[] bytes = new byte[source.Length * sizeof(float)];
        buffer.CopyTo<byte>(bytes, byteOffset: 4096);
        Assert.Equal(source, System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray());

        Assert.Throws<ArgumentException>(() => buffer.CopyFrom<float>(source, byteOffset: buffer.ByteLength - 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer.CopyTo<float>(back, byteOffset: -1));
        Assert.Equal(1, CudaLiveObjects.Buffers);
    }

    [SkippableFact]
    public void Fill_and_Clear_set_every_byte()
    {
        SkipWithoutGpu();
        using var device = new CudaDevice(0);
        using CudaBuffer buffer = device.Allocate(3 * MiB + 7);
        byte[] host = new byte[buffer.ByteLength];

        buffer.Fill(0xAB);
        buffer.CopyTo<byte>(host);
        Assert.True(host.AsSpan().IndexOfAnyExcept((byte)0xAB) < 0, "Fill(0xAB) left other bytes");

        buffer.Clear();
        buffer.CopyTo<byte>(host);
        Assert.True(host.AsSpan().IndexOfAnyExcept((byte)0) < 0, "Clear() left non-zero bytes");
    }

    [SkippableFact]
    public void Stream_ordered_work_completes_in_order_and_events_time_it()
    {
        SkipWithoutGpu();
        using var device = new CudaDevice(0);
        using CudaStream stream = device.CreateStream();
        using CudaEvent start = device.CreateEvent();
        using CudaEvent end = device.CreateEvent();
        Assert.NotEqual(0, stream.Handle);
        Assert.NotEqual(0, start.Handle);

        int[] source = Enumerable.Range(0, (int)(64 * MiB / sizeof(int))).ToArray();
        int[] back = new int[source.Length];
        using CudaBuffer buffer = device.Allocate(64 * MiB);

        start.Record(stream);
        buffer.Clear(stream);
        buffer.CopyFrom<int>(source, stream);
        buffer.CopyTo<int>(back, stream);
        end.Record(stream);

        end.Synchronize();
        Assert.True(end.IsComplete);
        Assert.True(stream.IsComplete);
        stream.Synchronize();
        Assert.Equal(source, back);

        float milliseconds = CudaEvent.ElapsedMilliseconds(start, end);
        Assert.True(milliseconds > 0 && milliseconds < 60_000, $"elapsed {milliseconds} ms");

        // A second stream waiting on an event recorded on the first sees the first's writes.
        using CudaStream second = device.CreateStream();
        buffer.Fill(0x11, stream);
        end.Record(stream);
        second.Wait(end);
        byte[] head = new byte[4096];
        buffer.CopyTo<byte>(head, second);
        second.Synchronize();
        Assert.True(head.AsSpan().IndexOfAnyExcept((byte)0x11) < 0, "the waiting stream read stale data");
    }

    [SkippableFact]
    public void Memory_info_sees_an_allocation()
    {
        SkipWithoutGpu();
        using var device = new CudaDevice(0);

        (long freeBefore, long total) = device.MemoryInfo();
        Assert.True(total > 0 && freeBefore > 0 && freeBefore <= total);
        Assert.Equal(device.TotalMemoryBytes, total);

        using (CudaBuffer big = device.Allocate(512 * MiB))
        {
            (long freeDuring, _) = device.MemoryInfo();
            Assert.True(freeBefore - freeDuring >= 511 * MiB, $"free went from {freeBefore} to {freeDuring}");
        }

        (long freeAfter, _) = device.MemoryInfo();
        Assert.True(freeAfter >= freeBefore - 64 * MiB, $"free went from {freeBefore} to {freeAfter} after the free");
    }

    [SkippableFact]
    public void Out_of_memory_is_a_CudaException_with_the_driver_code()
    {
        SkipWithoutGpu();
        using var device = new CudaDevice(0);

        var ex = Assert.Throws<CudaException>(() => device.Allocate(device.TotalMemoryBytes * 4));
        Assert.Equal(CUresult.CUDA_ERROR_OUT_OF_MEMORY, ex.Result);
        Assert.Contains("cuMemAlloc_v2", ex.Message);
        Assert.Equal(0, CudaLiveObjects.Buffers);
    }

    [SkippableFact]
    public void Children_keep_the_context_alive_after_the_device_is_disposed()
    {
        SkipWithoutGpu();
        var device = new CudaDevice(0);
        CudaBuffer buffer = device.Allocate(MiB);
        CudaStream stream = device.CreateStream();
        CudaEvent cudaEvent = device.CreateEvent();
        Assert.Equal(1, CudaLiveObjects.Contexts);

        device.Dispose();
        Assert.Equal(1, CudaLiveObjects.Contexts);

        buffer.Fill(7, stream);
        cudaEvent.Record(stream);
        cudaEvent.Synchronize();
        byte[] host = new byte[16];
        buffer.CopyTo<byte>(host);
        Assert.All(host, b => Assert.Equal(7, b));

        buffer.Dispose();
        stream.Dispose();
        Assert.Equal(1, CudaLiveObjects.Contexts);
        cudaEvent.Dispose();
        Assert.Equal(0, CudaLiveObjects.Total);

        Assert.Throws<ObjectDisposedException>(() => buffer.Clear());
        Assert.Throws<ObjectDisposedException>(() => stream.Handle);
        buffer.Dispose(); // Dispose twice is harmless.
    }

    [SkippableFact]
    public void Calls_leave_the_threads_current_context_alone_and_MakeCurrent_sets_it()
    {
        SkipWithoutGpu();
        using var device = new CudaDevice(0);

        nint before = CurrentContext();
        using (CudaBuffer buffer = device.Allocate(MiB))
        {
            buffer.Clear();
            device.Synchronize();
        }
        Assert.Equal(before, CurrentContext());

        device.MakeCurrent();
        Assert.Equal(device.Context.DangerousGetHandle(), CurrentContext());
        Assert.Equal(CUresult.CUDA_SUCCESS, CudaDriverMethods.cuCtxSetCurrent(before));
    }

    [SkippableFact]
    public void Opening_a_device_past_the_last_names_the_count()
    {
        SkipWithoutGpu();
        int count = CudaDriver.Probe().DeviceCount;

        var ex = Assert.Throws<CudaUnavailableException>(() => new CudaDevice(count));
        Assert.StartsWith($"no CUDA device {count}", ex.Message);
    }

    private static nint CurrentContext()
    {
        nint context;
        Assert.Equal(CUresult.CUDA_SUCCESS, CudaDriverMethods.cuCtxGetCurrent(&context));
        return context;
    }
}
