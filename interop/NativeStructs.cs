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
