// HostMemory.cs: the host allocations kernels stream through (KV pools, activations), aligned
// for SIMD and, when large, backed by 2 MiB pages on Linux. Paged attention reads the KV pool
// in blocks scattered over it; on 4 KiB pages every block crosses fresh pages, so TLB misses
// and prefetcher restarts cost a fifth of the read rate (perf/README.md). Transparent huge
// pages are usually in "madvise" mode, so the advice must come before the first touch.
using System.Runtime.InteropServices;

namespace SharpInfer.Interop;

public static unsafe partial class HostMemory
{
    /// <summary>Size and alignment of a transparent huge page on x86-64 and arm64 Linux.</summary>
    public const nuint HugePageBytes = 2 << 20;

    private const int MadvHugePage = 14; // MADV_HUGEPAGE in <sys/mman.h> (Linux, all architectures)

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int madvise(void* address, nuint length, int advice);

    private static int _adviceWorks = 1;

    /// <summary>
    /// Allocates <paramref name="bytes"/> zeroed bytes, 64-byte aligned; from one huge page up,
    /// 2 MiB aligned and advised to use huge pages (Linux only; the advice is a hint: a kernel
    /// without THP keeps 4 KiB pages, and a tail shorter than a huge page stays on 4 KiB pages,
    /// so nothing is padded). Free with <see cref="Free"/>.
    /// </summary>
    public static void* Allocate(nuint bytes)
    {
        bytes = Math.Max(bytes, 1);
        bool huge = bytes >= HugePageBytes && OperatingSystem.IsLinux();
        nuint alignment = huge ? HugePageBytes : 64;
        void* data = NativeMemory.AlignedAlloc(bytes, alignment);
        if (huge && Volatile.Read(ref _adviceWorks) == 1)
        {
            try
            {
                if (madvise(data, bytes, MadvHugePage) != 0) Volatile.Write(ref _adviceWorks, 0); // EINVAL: no THP in this kernel
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                Volatile.Write(ref _adviceWorks, 0);
            }
        }
        NativeMemory.Clear(data, bytes);
        return data;
    }

    public static void Free(void* data) => NativeMemory.AlignedFree(data);
}
