// CudaException.cs: the exceptions a failed CUDA driver call becomes, and the one status check that throws them.
using System.Runtime.InteropServices;
using static SharpInfer.Interop.Cuda.CudaDriverMethods;

namespace SharpInfer.Interop.Cuda;

/// <summary>A CUDA driver call failed. <see cref="Result"/> is the driver's status; the message names the call.</summary>
public class CudaException : Exception
{
    /// <summary>The driver's status code.</summary>
    public CUresult Result { get; }

    /// <summary>The driver's name for <see cref="Result"/>, e.g. <c>CUDA_ERROR_OUT_OF_MEMORY</c>.</summary>
    public string ErrorName { get; }

    /// <summary>The driver's description of <see cref="Result"/>, e.g. <c>out of memory</c>.</summary>
    public string ErrorDescription { get; }

    public CudaException(CUresult result, string operation)
        : this($"{operation} failed: {NameOf(result)} ({DescriptionOf(result)})", result)
    {
    }

    /// <summary>For derived exceptions that write their own message.</summary>
    private protected CudaException(string message, CUresult result) : base(message)
    {
        Result = result;
        ErrorName = NameOf(result);
        ErrorDescription = DescriptionOf(result);
    }

    /// <summary>Throws <see cref="CudaException"/> unless <paramref name="result"/> is success.</summary>
    /// <param name="operation">The driver function that returned it, for the message.</param>
    internal static void ThrowIfFailed(CUresult result, string operation)
    {
        if (result != CUresult.CUDA_SUCCESS)
        {
            throw new CudaException(result, operation);
        }
    }

    /// <summary>The driver's name for a status; falls back to this enum when the driver is absent or does not know the code.</summary>
    internal static unsafe string NameOf(CUresult result)
    {
        byte* text = null;
        if (cuGetErrorName(result, &text) == CUresult.CUDA_SUCCESS && text != null)
        {
            return Marshal.PtrToStringUTF8((nint)text) ?? result.ToString();
        }
        return Enum.IsDefined(result) ? result.ToString() : $"CUresult {(int)result}";
    }

    /// <summary>The driver's description of a status, or a plain fallback when the driver cannot say.</summary>
    internal static unsafe string DescriptionOf(CUresult result)
    {
        byte* text = null;
        if (cuGetErrorString(result, &text) == CUresult.CUDA_SUCCESS && text != null)
        {
            return Marshal.PtrToStringUTF8((nint)text) ?? "unknown error";
        }
        return result switch
        {
            CUresult.CUDA_ERROR_NO_DEVICE => "no CUDA-capable device is detected",
            CUresult.CUDA_ERROR_NOT_INITIALIZED => "the CUDA driver is not initialized or not installed",
            CUresult.CUDA_ERROR_NOT_FOUND => "named symbol not found",
            CUresult.CUDA_ERROR_INSUFFICIENT_DRIVER => "the installed NVIDIA driver is older than the CUDA runtime",
            _ => "no description from the driver",
        };
    }
}

/// <summary>
/// No usable CUDA device: no NVIDIA driver, a driver too old for this binding, no GPU, or a device
/// ordinal past the visible ones. The message always starts with "no CUDA device" and says which.
/// </summary>
public sealed class CudaUnavailableException : CudaException
{
    public CudaUnavailableException(string reason, CUresult result = CUresult.CUDA_ERROR_NO_DEVICE)
        : base(reason, result)
    {
    }
}
