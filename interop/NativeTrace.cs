// NativeTrace.cs: profiler ranges (NVTX through libsharpinfer's si_trace_* exports), so an
// Nsight Systems timeline shows the managed engine's phases and requests beside the native
// ops' own ranges. Calls are a few nanoseconds when no profiler is attached; when the
// library cannot be loaded (a host that only runs managed code) tracing quietly turns off.
using System.Runtime.InteropServices;

namespace SharpInfer.Interop;

internal static unsafe partial class NativeMethods
{
    [LibraryImport(LibraryName)] internal static partial SiStatus si_trace_available(int* outAvailable);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_trace_push(byte* name);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_trace_pop();
    [LibraryImport(LibraryName)] internal static partial SiStatus si_trace_range_start(byte* name, ulong* outId);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_trace_range_end(ulong id);
}

public static unsafe class NativeTrace
{
    private static int _state; // 0 unknown, 1 on, -1 off

    /// <summary>True when ranges reach NVTX: the library loads and was built with NVTX.</summary>
    public static bool Enabled
    {
        get
        {
            int state = Volatile.Read(ref _state);
            if (state == 0)
            {
                state = -1;
                try
                {
                    NativeLibraryLoader.EnsureLoaded();
                    int available = 0;
                    if (NativeMethods.si_trace_available(&available) == SiStatus.Ok && available != 0) state = 1;
                }
                catch (NativeLibraryException) { }
                Volatile.Write(ref _state, state);
            }
            return state > 0;
        }
    }

    /// <summary>Opens a range nested on this thread; dispose the result to close it. Names
    /// longer than 256 characters are cut.</summary>
    public static Range Push(string name)
    {
        if (!Enabled) return default;
        byte* utf8 = stackalloc byte[Utf8Length(name) + 1];
        Encode(name, utf8);
        NativeMethods.si_trace_push(utf8);
        return new Range(true);
    }

    /// <summary>Starts a range that may end on another thread (a request); 0 when tracing is off.</summary>
    public static ulong Start(string name)
    {
        if (!Enabled) return 0;
        byte* utf8 = stackalloc byte[Utf8Length(name) + 1];
        Encode(name, utf8);
        ulong id = 0;
        NativeMethods.si_trace_range_start(utf8, &id);
        return id;
    }

    /// <summary>Ends a range from <see cref="Start"/> (0 is ignored).</summary>
    public static void End(ulong id)
    {
        if (id != 0) NativeMethods.si_trace_range_end(id);
    }

    private static int Utf8Length(string s) => System.Text.Encoding.UTF8.GetMaxByteCount(Math.Min(s.Length, 256));

    private static void Encode(string s, byte* destination)
    {
        var span = s.AsSpan(0, Math.Min(s.Length, 256));
        int written = System.Text.Encoding.UTF8.GetBytes(span, new Span<byte>(destination, Utf8Length(s)));
        destination[written] = 0;
    }

    /// <summary>A nested range; disposing pops it.</summary>
    public readonly struct Range : IDisposable
    {
        private readonly bool _open;
        internal Range(bool open) => _open = open;
        public void Dispose()
        {
            if (_open) NativeMethods.si_trace_pop();
        }
    }
}
