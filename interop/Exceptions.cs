// Exceptions.cs: the typed exceptions a failed native status becomes (see NativeStatus.Check).
namespace SharpInfer.Interop;

/// <summary>Base of every error reported by libsharpinfer.</summary>
public class SharpInferException : Exception
{
    public SiStatus Status { get; }
    public SharpInferException(SiStatus status, string message) : base(message) => Status = status;
}

/// <summary>Bad pointer, shape or value passed to a native op: a bug in the caller.</summary>
public sealed class NativeArgumentException(string message) : SharpInferException(SiStatus.InvalidArgument, message);

/// <summary>A valid request the chosen backend cannot run (dtype, head dim...).</summary>
public sealed class UnsupportedOperationException(string message) : SharpInferException(SiStatus.Unsupported, message);

/// <summary>Host or device memory ran out; the scheduler may preempt and retry.</summary>
public sealed class NativeOutOfMemoryException(string message) : SharpInferException(SiStatus.OutOfMemory, message);

/// <summary>The cuda backend found no usable device or driver.</summary>
public sealed class NoDeviceException(string message) : SharpInferException(SiStatus.NoDevice, message);

/// <summary>A CUDA call inside libsharpinfer failed.</summary>
public sealed class DeviceException(string message) : SharpInferException(SiStatus.Device, message);

/// <summary>The backend is not compiled into the loaded libsharpinfer.</summary>
public sealed class BackendNotCompiledException(string message) : SharpInferException(SiStatus.NotCompiled, message);

/// <summary>libsharpinfer could not be found or loaded, or has the wrong ABI version.</summary>
public sealed class NativeLibraryException(string message, Exception? inner = null) : Exception(message, inner);
