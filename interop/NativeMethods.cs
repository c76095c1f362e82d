// NativeMethods.cs: every libsharpinfer import, one per native export, exact names.
// Callers go through the Check() wrappers in the public classes, never use these directly.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

[assembly: DisableRuntimeMarshalling]

namespace SharpInfer.Interop;

internal static unsafe partial class NativeMethods
{
    /// <summary>Must equal SI_ABI_VERSION in sharpinfer.h; checked when the library loads.</summary>
    internal const int AbiVersion = 3;
    internal const string LibraryName = "sharpinfer";

    [LibraryImport(LibraryName)] internal static partial SiStatus si_abi_version(int* outVersion);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_last_error(byte** outMessage);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_backend_compiled(SiBackend backend, int* outCompiled);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_build_info(byte** outInfo);

    [LibraryImport(LibraryName)] internal static partial SiStatus si_context_create(SiContextOptions* options, nint* outContext);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_context_destroy(nint context);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_context_synchronize(SafeContextHandle context);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_live_context_count(int* outCount);

    [LibraryImport(LibraryName)] internal static partial SiStatus si_embedding(SafeContextHandle ctx, SiEmbeddingParams* p);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_rms_norm(SafeContextHandle ctx, SiRmsNormParams* p);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_matmul(SafeContextHandle ctx, SiMatmulParams* p);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_rope(SafeContextHandle ctx, SiRopeParams* p);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_attention(SafeContextHandle ctx, SiAttentionParams* p);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_swiglu(SafeContextHandle ctx, SiSwigluParams* p);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_add(SafeContextHandle ctx, SiAddParams* p);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_softmax(SafeContextHandle ctx, SiSoftmaxParams* p);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_argmax(SafeContextHandle ctx, SiArgmaxParams* p);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_kv_write(SafeContextHandle ctx, SiKvWriteParams* p);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_paged_attention_workspace_size(SafeContextHandle ctx, SiPagedAttentionParams* p, long* outBytes);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_paged_attention(SafeContextHandle ctx, SiPagedAttentionParams* p);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_qmatmul(SafeContextHandle ctx, SiQmatmulParams* p);
    [LibraryImport(LibraryName)] internal static partial SiStatus si_sparse_matmul(SafeContextHandle ctx, SiSparseMatmulParams* p);
}
