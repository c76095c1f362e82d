// NativeContext.cs: a libsharpinfer context (one backend instance) and its ops. Pointers in
// the params structs must live in the context's memory space (host for ref/cpu, device for
// cuda) and stay valid for the call (cpu) or until Synchronize (cuda).
namespace SharpInfer.Interop;

public sealed unsafe class NativeContext : IDisposable
{
    private readonly SafeContextHandle _handle;

    public SiBackend Backend { get; }

    public NativeContext(SiBackend backend, int numThreads = 0, int deviceOrdinal = 0)
    {
        NativeLibraryLoader.EnsureLoaded();
        var options = new SiContextOptions { Backend = backend, NumThreads = numThreads, DeviceOrdinal = deviceOrdinal };
        nint raw;
        NativeStatus.Check(NativeMethods.si_context_create(&options, &raw));
        _handle = new SafeContextHandle();
        System.Runtime.InteropServices.Marshal.InitHandle(_handle, raw);
        Backend = backend;
    }

    /// <summary>True when the backend is compiled into the loaded library.</summary>
    public static bool IsCompiled(SiBackend backend)
    {
        NativeLibraryLoader.EnsureLoaded();
        int compiled;
        NativeStatus.Check(NativeMethods.si_backend_compiled(backend, &compiled));
        return compiled != 0;
    }

    /// <summary>Version, compiled backends and detected CPU features of the loaded library.</summary>
    public static string BuildInfo
    {
        get
        {
            NativeLibraryLoader.EnsureLoaded();
            byte* text;
            NativeStatus.Check(NativeMethods.si_build_info(&text));
            return System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)text) ?? "";
        }
    }

    /// <summary>Native contexts alive in this process (tests assert it returns to zero).</summary>
    public static int LiveCount
    {
        get
        {
            NativeLibraryLoader.EnsureLoaded();
            int count;
            NativeStatus.Check(NativeMethods.si_live_context_count(&count));
            return count;
        }
    }

    public void Synchronize() => NativeStatus.Check(NativeMethods.si_context_synchronize(_handle));

    public void Embedding(in SiEmbeddingParams p) { fixed (SiEmbeddingParams* pp = &p) NativeStatus.Check(NativeMethods.si_embedding(_handle, pp)); }
    public void RmsNorm(in SiRmsNormParams p) { fixed (SiRmsNormParams* pp = &p) NativeStatus.Check(NativeMethods.si_rms_norm(_handle, pp)); }
    public void Matmul(in SiMatmulParams p) { fixed (SiMatmulParams* pp = &p) NativeStatus.Check(NativeMethods.si_matmul(_handle, pp)); }
    public void Rope(in SiRopeParams p) { fixed (SiRopeParams* pp = &p) NativeStatus.Check(NativeMethods.si_rope(_handle, pp)); }
    public void Attention(in SiAttentionParams p) { fixed (SiAttentionParams* pp = &p) NativeStatus.Check(NativeMethods.si_attention(_handle, pp)); }
    public void Swiglu(in SiSwigluParams p) { fixed (SiSwigluParams* pp = &p) NativeStatus.Check(NativeMethods.si_swiglu(_handle, pp)); }
    public void Add(in SiAddParams p) { fixed (SiAddParams* pp = &p) NativeStatus.Check(NativeMethods.si_add(_handle, pp)); }
    public void Softmax(in SiSoftmaxParams p) { fixed (SiSoftmaxParams* pp = &p) NativeStatus.Check(NativeMethods.si_softmax(_handle, pp)); }
    public void Argmax(in SiArgmaxParams p) { fixed (SiArgmaxParams* pp = &p) NativeStatus.Check(NativeMethods.si_argmax(_handle, pp)); }

    public void KvWrite(in SiKvWriteParams p) { fixed (SiKvWriteParams* pp = &p) NativeStatus.Check(NativeMethods.si_kv_write(_handle, pp)); }
    public void PagedAttention(in SiPagedAttentionParams p) { fixed (SiPagedAttentionParams* pp = &p) NativeStatus.Check(NativeMethods.si_paged_attention(_handle, pp)); }

    /// <summary>Scratch bytes si_paged_attention needs for these params (0 = none).</summary>
    public long PagedAttentionWorkspaceSize(in SiPagedAttentionParams p)
    {
        long bytes;
        fixed (SiPagedAttentionParams* pp = &p) NativeStatus.Check(NativeMethods.si_paged_attention_workspace_size(_handle, pp, &bytes));
        return bytes;
    }

    /// <summary>y = x * dequant(q)^T (+ bias): int8 / int4 grouped weights, optionally int8 activations.</summary>
    public void QMatmul(in SiQmatmulParams p) { fixed (SiQmatmulParams* pp = &p) NativeStatus.Check(NativeMethods.si_qmatmul(_handle, pp)); }

    /// <summary>y = x * w^T (+ bias) for a pruned w kept as 2:4 (values + uint16 metadata) or bitmask (masks + values + row offsets).</summary>
    public void SparseMatmul(in SiSparseMatmulParams p) { fixed (SiSparseMatmulParams* pp = &p) NativeStatus.Check(NativeMethods.si_sparse_matmul(_handle, pp)); }

    public void Dispose() => _handle?.Dispose();
}
