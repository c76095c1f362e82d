// GgmlType.cs: ggml's tensor type ids as stored in GGUF tensor infos, with the block layout of
// each (elements per block, bytes per block) so a reader can bounds-check any tensor, even one
// of a type this build cannot compute with.
namespace SharpInfer.Models.Gguf;

/// <summary>ggml tensor type ids (ggml.h <c>enum ggml_type</c>). Gaps are ids ggml retired.</summary>
public enum GgmlType : uint
{
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
}

/// <summary>Block layouts of <see cref="GgmlType"/>.</summary>
public static class GgmlTypeInfo
{
    /// <summary>(elements per block, bytes per block), or false for an id this table does not know.</summary>
    public static bool TryGetBlockLayout(GgmlType type, out int blockElements, out int blockBytes)
    {
        (blockElements, blockBytes) = type switch
        {
            GgmlType.F32 => (1, 4),
            GgmlType.F16 => (1, 2),
            GgmlType.BF16 => (1, 2),
            GgmlType.F64 => (1, 8),
            GgmlType.I8 => (1, 1),
            GgmlType.I16 => (1, 2),
            GgmlType.I32 => (1, 4),
            GgmlType.I64 => (1, 8),
            GgmlType.Q4_0 => (32, 18),
            GgmlType.Q4_1 => (32, 20),
            GgmlType.Q5_0 => (32, 22),
            GgmlType.Q5_1 => (32, 24),
            GgmlType.Q8_0 => (32, 34),
            GgmlType.Q8_1 => (32, 36),
            GgmlType.Q2_K => (256, 84),
            GgmlType.Q3_K => (256, 110),
            GgmlType.Q4_K => (256, 144),
            GgmlType.Q5_K => (256, 176),
            GgmlType.Q6_K => (256, 210),
            GgmlType.Q8_K => (256, 292),
            GgmlType.IQ2_XXS => (256, 66),
            GgmlType.IQ2_XS => (256, 74),
            GgmlType.IQ3_XXS => (256, 98),
            GgmlType.IQ1_S => (256, 50),
            GgmlType.IQ4_NL => (32, 18),
            GgmlType.IQ3_S => (256, 110),
            GgmlType.IQ2_S => (256, 82),
            GgmlType.IQ4_XS => (256, 136),
            GgmlType.IQ1_M => (256, 56),
            GgmlType.TQ1_0 => (256, 54),
            GgmlType.TQ2_0 => (256, 66),
            GgmlType.MXFP4 => (32, 17),
            _ => (0, 0),
        };
        return blockElements != 0;
    }

    /// <summary>The matching dense dtype, if this build can load the type.</summary>
    public static bool TryToDType(GgmlType type, out TensorDType dtype)
    {
        switch (type)
        {
            case GgmlType.F32: dtype = TensorDType.F32; return true;
            case GgmlType.F16: dtype = TensorDType.F16; return true;
            case GgmlType.BF16: dtype = TensorDType.BF16; return true;
            default: dtype = default; return false;
        }
    }

    public static GgmlType FromDType(TensorDType dtype) => dtype switch
    {
        TensorDType.F32 => GgmlType.F32,
        TensorDType.F16 => GgmlType.F16,
        TensorDType.BF16 => GgmlType.BF16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>"Q4_K" for a known id, "type 31" otherwise.</summary>
    public static string Name(GgmlType type) =>
        Enum.IsDefined(type) ? type.ToString() : $"type {(uint)type}";
}
