// TensorDType.cs: element types of dense weight tensors (values equal the native si_dtype enum)
// and the scalar conversions to float32 the loaders and tests need.
using System.Runtime.InteropServices;

namespace SharpInfer.Models;

/// <summary>Element type of a dense weight tensor. Values equal the native <c>si_dtype</c>.</summary>
public enum TensorDType
{
    F32 = 0,
    F16 = 1,
    BF16 = 2,
}

/// <summary>Sizes and conversions for <see cref="TensorDType"/>.</summary>
public static class TensorDTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int ElementSize(this TensorDType dtype) => dtype switch
    {
        TensorDType.F32 => 4,
        TensorDType.F16 => 2,
        TensorDType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown tensor dtype"),
    };

    /// <summary>Converts little-endian elements of <paramref name="dtype"/> to float32.</summary>
    public static void ConvertToFloat32(this TensorDType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        int count = source.Length / dtype.ElementSize();
        if (destination.Length < count) throw new ArgumentException("destination too small", nameof(destination));
        switch (dtype)
        {
            case TensorDType.F32:
                MemoryMarshal.Cast<byte, float>(source[..(count * 4)]).CopyTo(destination);
                break;
            case TensorDType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(source[..(count * 2)]);
                for (int i = 0; i < count; i++) destination[i] = (float)halves[i];
                break;
            case TensorDType.BF16:
                var raw = MemoryMarshal.Cast<byte, ushort>(source[..(count * 2)]);
                for (int i = 0; i < count; i++) destination[i] = BFloat16ToSingle(raw[i]);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown tensor dtype");
        }
    }

    /// <summary>bfloat16 is the top half of a float32.</summary>
    public static float BFloat16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>float32 to bfloat16 with round-to-nearest-even; NaN stays NaN.</summary>
    public static ushort SingleToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + roundingBias) >> 16);
    }
}
