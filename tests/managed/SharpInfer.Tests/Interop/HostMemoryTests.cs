// HostMemoryTests.cs: host allocations are aligned and zeroed, and large ones land on huge pages
// where the kernel offers transparent huge pages (the KV pool's read rate depends on it).
using System.Globalization;
using SharpInfer.Interop;
using SharpInfer.Tensors;

namespace SharpInfer.Tests.Interop;

public unsafe class HostMemoryTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(4096 + 3)]
    [InlineData((2 << 20) - 1)]
    [InlineData((2 << 20) + 5)]
    [InlineData(9 << 20)]
    public void Allocate_IsAlignedAndZeroed(long bytes)
    {
        byte* data = (byte*)HostMemory.Allocate((nuint)bytes);
        try
        {
            nuint alignment = bytes >= (long)HostMemory.HugePageBytes && OperatingSystem.IsLinux() ? HostMemory.HugePageBytes : 64;
            Assert.Equal(0u, (nuint)data % alignment);
            var span = new ReadOnlySpan<byte>(data, checked((int)bytes));
            Assert.Equal(-1, span.IndexOfAnyExcept((byte)0));
            data[bytes - 1] = 7; // the whole length is writable
        }
        finally
        {
            HostMemory.Free(data);
        }
    }

    [SkippableFact]
    public void LargeHostBuffer_IsBackedByHugePages_WhenTheKernelOffersThem()
    {
        const string thp = "/sys/kernel/mm/transparent_hugepage/enabled";
        Skip.IfNot(OperatingSystem.IsLinux() && File.Exists(thp), "transparent huge pages are a Linux feature; this kernel does not expose them");
        string mode = File.ReadAllText(thp);
        Skip.If(mode.Contains("[never]", StringComparison.Ordinal), $"transparent huge pages are disabled here ({thp}: {mode.Trim()})");

        using var buffer = new HostBuffer<byte>(16 << 20);
        long start = (long)buffer.Pointer;
        long hugeKb = AnonHugePagesKb(start, start + buffer.Length);
        // At least half the buffer: the kernel may fall back to small pages for a few extents
        // when memory is fragmented, but advice that never took would show zero.
        Assert.True(hugeKb >= 8 << 10, $"16 MiB host buffer has only {hugeKb} kB on huge pages ({thp}: {mode.Trim()})");
    }

    // Sum of AnonHugePages over the mappings of this process that overlap [start, end).
    private static long AnonHugePagesKb(long start, long end)
    {
        long total = 0;
        bool inside = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-');
            int space = line.IndexOf(' ');
            if (dash > 0 && space > dash && long.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, null, out long lo)
                && long.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, null, out long hi))
            {
                inside = lo < end && hi > start;
            }
            else if (inside && line.StartsWith("AnonHugePages:", StringComparison.Ordinal))
            {
                total += long.Parse(line.AsSpan("AnonHugePages:".Length).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture);
            }
        }
        return total;
    }
}
