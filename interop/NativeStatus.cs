// NativeStatus.cs: the one place native statuses become exceptions.
using System.Runtime.InteropServices;

namespace SharpInfer.Interop;

internal static unsafe class NativeStatus
{
    /// <summary>Throws the typed exception for a failed status, with the native message.</summary>
    public static void Check(SiStatus status)
    {
        if (status == SiStatus.Ok) return;
        string message = LastError();
        if (message.Length == 0) message = $"libsharpinfer returned {status}";
        throw status switch
        {
            SiStatus.InvalidArgument => new NativeArgumentException(message),
            SiStatus.Unsupported => new UnsupportedOperationException(message),
            SiStatus.OutOfMemory => new NativeOutOfMemoryException(message),
            SiStatus.NoDevice => new NoDeviceException(message),
            SiStatus.Device => new DeviceException(message),
            SiStatus.NotCompiled => new BackendNotCompiledException(message),
            _ => new SharpInferException(status, $"internal error in libsharpinfer: {message}"),
        };
    }

    public static string LastError()
    {
        byte* text;
        if (NativeMethods.si_last_error(&text) != SiStatus.Ok || text == null) return "";
        return Marshal.PtrToStringUTF8((nint)text) ?? "";
    }
}
