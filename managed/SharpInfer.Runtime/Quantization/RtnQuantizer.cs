// RtnQuantizer.cs: round-to-nearest quantization of f32 weights into the si_qmatmul layout.
// int8: symmetric per row and group, scale = max|w| / 127, q = round(w / scale) in [-127, 127].
// int4: affine per row and group from the group's min and max: scale = (max - min) / 15,
// offset = min, q = round((w - min) / scale) in [0, 15], so every value is within scale / 2.
// A row whose length is not a multiple of the group gets a shorter (ragged) last group.
// An optional clip ratio r per (row, group) shrinks the range first (the activation-aware method
// searches it): int8 uses r * max|w|; int4 clamps to [max(min, -r*a), min(max, r*a)], a = max|w|.
namespace SharpInfer.Quantization;

public static class RtnQuantizer
{
    /// <summary>Quantizes row-major <paramref name="weights"/> [rows, columns].</summary>
    public static QuantizedWeight Quantize(ReadOnlySpan<float> weights, int rows, int columns, QuantFormat format, int groupSize,
                                           QuantActivations activations = QuantActivations.Float)
    {
        if (weights.Length != (long)rows * columns) throw new ArgumentException($"{weights.Length} values are not [{rows}, {columns}]");
        var result = QuantizedWeight.Allocate(format, rows, columns, Math.Min(groupSize, columns), activations);
        for (int r = 0; r < rows; r++) QuantizeRow(weights.Slice(r * columns, columns), result, r);
        return result;
    }

    /// <summary>
    /// Quantizes an array in parallel (rows are independent). <paramref name="clip"/>, when given,
    /// holds one range ratio in (0, 1] per row and group ([rows, groups]).
    /// </summary>
    public static QuantizedWeight Quantize(float[] weights, int rows, int columns, QuantFormat format, int groupSize,
                                           QuantActivations activations = QuantActivations.Float, float[]? clip = null)
    {
        if (weights.Length != (long)rows * columns) throw new ArgumentException($"{weights.Length} values are not [{rows}, {columns}]");
        var result = QuantizedWeight.Allocate(format, rows, columns, Math.Min(groupSize, columns), activations);
        int groups = result.GroupCount;
        if (clip is not null && clip.Length != (long)rows * groups) throw new ArgumentException($"clip needs [{rows}, {groups}] ratios");
        Parallel.For(0, rows, r => QuantizeRow(weights.AsSpan(r * columns, columns), result, r,
                                               clip is null ? default : clip.AsSpan(r * groups, groups)));
        return result;
    }

    /// <summary>Quantizes one row into row <paramref name="row"/> of <paramref name="target"/> (optionally clipped per group).</summary>
    public static void QuantizeRow(ReadOnlySpan<float> values, QuantizedWeight target, int row, ReadOnlySpan<float> clip = default)
    {
        int group = target.GroupSize;
        var q = target.RowValues(row);
        var scales = target.RowScales(row);
        if (target.Format == QuantFormat.Int8)
        {
            for (int g = 0; g < target.GroupCount; g++)
            {
                int start = g * group, length = Math.Min(group, values.Length - start);
                var x = values.Slice(start, length);
                float amax = 0;
                foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
                if (!clip.IsEmpty) amax *= clip[g];
                float scale = amax / 127f;
                scales[g] = scale;
                for (int j = 0; j < length; j++)
                    q[start + j] = scale == 0 ? (byte)0 : (byte)(sbyte)Math.Clamp(MathF.Round(x[j] / scale), -127f, 127f);
            }
        }
        else
        {
            var offsets = target.RowOffsets(row);
            for (int g = 0; g < target.GroupCount; g++)
            {
                int start = g * group, length = Math.Min(group, values.Length - start);
                var x = values.Slice(start, length);
                float min = float.PositiveInfinity, max = float.NegativeInfinity;
                foreach (float v in x)
                {
                    min = MathF.Min(min, v);
                    max = MathF.Max(max, v);
                }
                if (!clip.IsEmpty && clip[g] < 1f)
                {
                    float a = MathF.Max(-min, max) * clip[g];
                    float lo = MathF.Max(min, -a), hi = MathF.Min(max, a);
                    if (hi > lo) (min, max) = (lo, hi); // a one-sided group that would clip to nothing stays whole
                }
                float scale = (max - min) / 15f;
                scales[g] = scale;
                offsets[g] = min;
                for (int j = 0; j < length; j++)
                {
                    int value = scale == 0 ? 0 : (int)Math.Clamp(MathF.Round((x[j] - min) / scale), 0f, 15f);
                    Int4Packing.Set(q, start + j, value);
                }
            }
        }
    }

    /// <summary>
    /// Quantize-dequantize of one activation row as the W8A8 kernel does it (symmetric int8,
    /// scale = max|x| / 127, round to nearest), for measuring the error activation quantization adds.
    /// </summary>
    public static void FakeQuantizeActivationRow(Span<float> x)
    {
        float amax = 0;
        foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
        if (amax == 0) return;
        float scale = amax / 127f;
        for (int i = 0; i < x.Length; i++) x[i] = Math.Clamp(MathF.Round(x[i] / scale), -127f, 127f) * scale;
    }
}
