// ComputeBackend.cs: chooses and opens the native backend a model runs on.
using SharpInfer.Interop;

namespace SharpInfer.Backends;

public enum BackendKind { Ref = SiBackend.Ref, Cpu = SiBackend.Cpu, Cuda = SiBackend.Cuda }

/// <summary>A native context plus what the runtime needs to know about it.</summary>
public sealed class ComputeBackend : IDisposable
{
    public NativeContext Context { get; }
    public BackendKind Kind { get; }
    public int Threads { get; }

    private ComputeBackend(NativeContext context, BackendKind kind, int threads)
    {
        Context = context;
        Kind = kind;
        Threads = threads;
    }

    /// <summary>Opens a backend. threads = 0 uses every hardware thread (cpu only).</summary>
    public static ComputeBackend Open(BackendKind kind, int threads = 0)
    {
        if (kind == BackendKind.Cuda)
        {
            // The cuda kernels are compiled and tested natively (GPU tier); reaching them from
            // the managed runtime needs device-resident weights and activations, which the
            // model runner does not manage yet. Open the context anyway so a machine without
            // a device gets the precise "no CUDA device" reason first.
            using var probe = new NativeContext(SiBackend.Cuda);
            throw new UnsupportedOperationException(
                "the cuda backend is not yet wired into the managed model runner; use --backend cpu");
        }
        int resolved = threads > 0 ? threads : Environment.ProcessorCount;
        return new ComputeBackend(new NativeContext((SiBackend)kind, resolved), kind, resolved);
    }

    public void Dispose() => Context.Dispose();
}
