// NativeStructs.cs: blittable mirrors of the boundary structs and enums in
// native/include/sharpinfer/sharpinfer.h. Sizes are asserted in tests (AbiLayoutTests) and,
// on the native side, in native/src/api/abi_layout.cpp.
using System.Runtime.InteropServices;

namespace SharpInfer.Interop;

/// <summary>Status codes of every libsharpinfer export (0 = ok).</summary>
public enum SiStatus : int
{
    Ok = 0,
    InvalidArgument = 1,
    Unsupported = 2,
    OutOfMemory = 3,
    NoDevice = 4,
    Device = 5,
    NotCompiled = 6,
    Internal = 7,
}

public enum SiDType : int { F32 = 0, F16 = 1, BF16 = 2, I32 = 3, I8 = 4 }

public enum SiBackend : int { Ref = 0, Cpu = 1, Cuda = 2 }

public enum SiRopeLayout : int { AdjacentPairs = 0, RotateHalf = 1 }

[StructLayout(LayoutKind.Sequential)]
public struct SiContextOptions
{
    public SiBackend Backend;
    public int NumThreads;
    public int DeviceOrdinal;
    public int Reserved;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiEmbeddingParams
{
    public void* Table;   // [vocab, dim] in TableDType
    public int* Ids;      // [n_tokens]
    public float* Out;    // [n_tokens, dim]
    public SiDType TableDType;
    public int Vocab;
    public int Dim;
    public int NumTokens;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiRmsNormParams
{
    public float* X;      // [rows, dim], row stride XStride
    public float* Weight; // [dim]
    public float* Out;    // [rows, dim], row stride OutStride
    public long XStride;
    public long OutStride;
    public int Rows;
    public int Dim;
    public float Eps;
    public int Reserved;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiMatmulParams
{
    public float* X;    // [m, k], row stride XStride
    public void* W;     // [n, k] in WDType
    public float* Bias; // [n] or null
    public float* Y;    // [m, n], row stride YStride
    public long XStride;
    public long YStride;
    public int M;
    public int N;
    public int K;
    public SiDType WDType;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiRopeParams
{
    public float* X;          // [n_tokens, n_heads, head_dim], token stride TokenStride
    public int* Positions;    // [n_tokens]
    public long TokenStride;
    public int NumTokens;
    public int NumHeads;
    public int HeadDim;
    public int RotaryDim;
    public float FreqBase;
    public float FreqScale;
    public SiRopeLayout Layout;
    public int Reserved;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiAttentionParams
{
    public float* Q;      // [n_q, n_heads, head_dim], token stride QStride
    public float* KCache; // [>= n_ctx, n_kv_heads, head_dim], token stride KvStride
    public float* VCache; // same as KCache
    public float* Out;    // [n_q, n_heads, head_dim], token stride OutStride
    public long QStride;
    public long KvStride;
    public long OutStride;
    public int NumQ;
    public int NumCtx;
    public int NumHeads;
    public int NumKvHeads;
    public int HeadDim;
    public float Scale;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiSwigluParams
{
    public float* Gate; // [rows, n]
    public float* Up;   // [rows, n]
    public float* Out;  // [rows, n]
    public long GateStride;
    public long UpStride;
    public long OutStride;
    public int Rows;
    public int N;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiAddParams
{
    public float* A;
    public float* B;
    public float* Out;
    public long N;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiSoftmaxParams
{
    public float* X;   // [rows, n]
    public float* Out; // [rows, n]
    public long XStride;
    public long OutStride;
    public int Rows;
    public int N;
    public float InvTemperature;
    public int Reserved;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiArgmaxParams
{
    public float* X; // [rows, n]
    public int* Out; // [rows]
    public long XStride;
    public int Rows;
    public int N;
}

/// <summary>One layer's paged KV cache: pools [num_blocks, block_size, n_kv_heads, head_dim].</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiPagedKv
{
    public void* KPool;
    public void* VPool;
    public float* KScale; // [num_blocks, block_size, n_kv_heads] for I8, else null
    public float* VScale;
    public int NumBlocks;
    public int BlockSize;
    public int NumKvHeads;
    public int HeadDim;
    public SiDType DType;
    public int Reserved;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiKvWriteParams
{
    public float* K;           // [n_tokens, n_kv_heads, head_dim], token stride KStride
    public float* V;           // [n_tokens, n_kv_heads, head_dim], token stride VStride
    public int* SlotMapping;   // [n_tokens]; negative = skip
    public SiPagedKv Cache;
    public long KStride;
    public long VStride;
    public int NumTokens;
    public int Reserved;
}

[StructLayout(LayoutKind.Sequential)]
public struct SiAttentionVariant
{
    public int SlidingWindow; // 0 = off
    public float LogitSoftcap; // 0 = off
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiPagedAttentionParams
{
    public float* Q;            // [total_q, n_heads, head_dim], token stride QStride
    public float* Out;          // [total_q, n_heads, head_dim], token stride OutStride
    public int* CuSeqlensQ;     // [n_seqs + 1]
    public int* ContextLens;    // [n_seqs]
    public int* BlockTables;    // [n_seqs, max_blocks_per_seq]
    public void* Workspace;
    public SiPagedKv Cache;
    public long QStride;
    public long OutStride;
    public long WorkspaceBytes;
    public int NumSeqs;
    public int MaxBlocksPerSeq;
    public int NumHeads;
    public int MaxQLen;
    public int MaxContextLen;
    public float Scale;
    public SiAttentionVariant Variant;
}

/// <summary>Quantized weight layouts of si_qmatmul (si_weight_format).</summary>
public enum SiWeightFormat : int
{
    /// <summary>int8 symmetric: w = q * scale; q [n, k], row stride k.</summary>
    I8 = 0,
    /// <summary>uint4 affine: w = q * scale + offset, q in [0, 15], two per byte along k (low nibble = even k).</summary>
    I4 = 1,
}

/// <summary>How si_qmatmul treats the activations (si_activation_mode).</summary>
public enum SiActivationMode : int
{
    /// <summary>W8A16 / W4A16: x stays floating point.</summary>
    Float = 0,
    /// <summary>W8A8: each row of x quantized to int8 on the fly (I8 weights only).</summary>
    I8 = 1,
    /// <summary>W8A8 / W4A8: x quantized to int8 per 32-k block (llama.cpp's Q8_0 activations).</summary>
    I8Block32 = 2,
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiQmatmulParams
{
    public float* X;         // [m, k], row stride XStride
    public void* Q;          // [n, k] quantized values in Format
    public float* Scales;    // [n, n_groups], n_groups = ceil(k / GroupSize)
    public float* Offsets;   // [n, n_groups] for I4, else null
    public float* Bias;      // [n] or null
    public float* Y;         // [m, n], row stride YStride; must not alias X
    public long XStride;
    public long YStride;
    public int M;
    public int N;
    public int K;
    public int GroupSize;    // >= 1; K for one group per row
    public SiWeightFormat Format;
    public SiActivationMode Activations;
}

/// <summary>Layouts of a pruned weight for si_sparse_matmul (si_sparse_format).</summary>
public enum SiSparseFormat : int
{
    /// <summary>
    /// Semi-structured 2:4: at most 2 non-zeros in every 4 consecutive k of a row. With kp = k rounded up to 16:
    /// values [n, kp/2], index uint16 [n, kp/16] (4 bits per group: first position in bits 0-1, second in 2-3).
    /// </summary>
    TwoFour = 0,
    /// <summary>
    /// Unstructured: index uint64 [n, ceil(k/64)] (bit j of word w keeps k = 64w + j), values of row r at
    /// [row_offsets[r], row_offsets[r+1]) in k order, row_offsets int64 [n + 1].
    /// </summary>
    Bitmask = 1,
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct SiSparseMatmulParams
{
    public float* X;          // [m, k], row stride XStride
    public void* Values;      // kept weights in ValuesDType (layout: see Format)
    public void* Index;       // 2:4: ushort [n, kp/16]; bitmask: ulong [n, ceil(k/64)]
    public long* RowOffsets;  // bitmask: [n + 1]; 2:4: null
    public float* Bias;       // [n] or null
    public float* Y;          // [m, n], row stride YStride; must not alias X
    public long XStride;
    public long YStride;
    public int M;
    public int N;
    public int K;
    public SiDType ValuesDType;  // F32, F16, BF16
    public SiSparseFormat Format;
    public int Reserved;         // must be 0
}
