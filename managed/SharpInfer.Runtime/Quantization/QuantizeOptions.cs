// QuantizeOptions.cs: what `sharpinfer quantize` asks for (scheme, group, method, calibration) and
// what it reports back (per-tensor formats, ragged groups, per-layer scale searches).
namespace SharpInfer.Quantization;

/// <summary>The weight/activation scheme of a quantized checkpoint.</summary>
public enum QuantScheme
{
    /// <summary>int8 symmetric weights, f32 activations (W8A16).</summary>
    Int8,

    /// <summary>uint4 affine weights (scale + offset per group), f32 activations (W4A16).</summary>
    Int4,

    /// <summary>int8 symmetric weights and int8 per-token activations (W8A8).</summary>
    W8A8,
}

/// <summary>How weights are turned into integers.</summary>
public enum QuantMethod
{
    /// <summary>Round to nearest, group by group.</summary>
    Rtn,

    /// <summary>
    /// Activation-aware: per input channel scales searched on calibration activations and folded into
    /// the preceding op before RTN (AWQ-style for weight-only schemes, SmoothQuant-style for W8A8).
    /// </summary>
    Aware,
}

public static class QuantSchemeNames
{
    public static string Name(this QuantScheme scheme) => scheme switch
    {
        QuantScheme.Int8 => "int8",
        QuantScheme.Int4 => "int4",
        QuantScheme.W8A8 => "w8a8",
        _ => throw new ArgumentOutOfRangeException(nameof(scheme)),
    };

    public static string Name(this QuantMethod method) => method == QuantMethod.Aware ? "aware" : "rtn";

    public static QuantFormat WeightFormat(this QuantScheme scheme) => scheme == QuantScheme.Int4 ? QuantFormat.Int4 : QuantFormat.Int8;

    public static QuantActivations Activations(this QuantScheme scheme) => scheme == QuantScheme.W8A8 ? QuantActivations.Int8 : QuantActivations.Float;
}

public sealed record QuantizeOptions
{
    public QuantScheme Scheme { get; init; } = QuantScheme.Int4;

    /// <summary>Columns per group; 0 (or anything >= a tensor's in-features) means one group per row.</summary>
    public int GroupSize { get; init; } = 128;

    public QuantMethod Method { get; init; } = QuantMethod.Rtn;

    /// <summary>Calibration text (the aware method needs it).</summary>
    public string? CalibrationText { get; init; }

    /// <summary>Most token rows of activations gathered per linear layer for the scale search.</summary>
    public int CalibrationTokens { get; init; } = 2048;

    /// <summary>Alpha grid: 0, 1/GridPoints, ..., 1.</summary>
    public int GridPoints { get; init; } = 20;

    /// <summary>CPU threads for calibration and the search (0 = all).</summary>
    public int Threads { get; init; }

    /// <summary>Tests only: write the (scaled, permuted) linears as dense F32 instead of quantizing them.</summary>
    internal bool WriteDenseLinears { get; init; }

    public void Validate()
    {
        if (GroupSize < 0) throw new ArgumentException($"group size must be >= 0 (got {GroupSize}); 0 means per-channel");
        if (Method == QuantMethod.Aware && string.IsNullOrWhiteSpace(CalibrationText))
            throw new ArgumentException("the activation-aware method needs calibration text (--calib FILE)");
        if (CalibrationTokens < 1) throw new ArgumentException("calibration tokens must be >= 1");
        if (GridPoints < 1) throw new ArgumentException("grid points must be >= 1");
    }
}

/// <summary>One quantized tensor of the output.</summary>
public sealed record QuantizedTensorInfo(string Name, int Rows, int Columns, QuantFormat Format, int GroupSize, QuantActivations Activations)
{
    public bool IsRagged => GroupSize < Columns && Columns % GroupSize != 0;
    public int LastGroupSize => Columns - (QuantizedWeight.GroupCountFor(Columns, GroupSize) - 1) * GroupSize;
}

/// <summary>One scale search: the linears sharing an input, the alpha chosen and the output error it gave.</summary>
/// <param name="Error">Sum of squared output differences at the chosen alpha.</param>
/// <param name="RtnError">The same at alpha = 0 (no scaling: plain RTN).</param>
public sealed record ScaleSearchInfo(string Group, string FoldedInto, double Alpha, double Error, double RtnError);

public sealed class QuantizeResult
{
    public required string OutputDirectory { get; init; }
    public required List<QuantizedTensorInfo> Tensors { get; init; }
    public List<ScaleSearchInfo> Searches { get; init; } = [];
    public List<string> Notes { get; init; } = [];
    public long OutputBytes { get; init; }
    public int CalibrationTokens { get; init; }
}
