// HfQuantizedTensors.cs: the quantization_config of a Hugging Face config.json and the tensors it
// implies: AutoGPTQ (qweight/qzeros/scales/g_idx, 4-bit, no act-order), AutoAWQ GEMM
// (qweight/qzeros/scales) and our own "sharpinfer" format (qweight/scales/offsets already in the
// si_qmatmul layout, so the values are used straight from the memory map). Every linear module
// with such tensors becomes one quantized WeightTensor under its canonical name.
using System.Text.Json;
using SharpInfer.Models.SafeTensors;
using SharpInfer.Quantization;
using SharpInfer.Tensors;

namespace SharpInfer.Models.HuggingFace;

/// <summary>One quantized module's settings in a "sharpinfer" quantization_config.</summary>
internal sealed record SharpInferModuleSpec(QuantFormat Format, int GroupSize, QuantActivations Activations);

/// <summary>The parsed quantization_config object.</summary>
internal sealed class HfQuantizationConfig
{
    public const string SharpInferMethod = "sharpinfer";
    public const int SharpInferFormatVersion = 1;

    public required string Method { get; init; }
    public int GroupSize { get; init; }

    /// <summary>GPTQ v1 checkpoints ("checkpoint_format": "gptq", the default) store zero - 1.</summary>
    public bool ZeroPlusOne { get; init; }

    /// <summary>Per-module settings of the "sharpinfer" format, keyed by the HF module name.</summary>
    public IReadOnlyDictionary<string, SharpInferModuleSpec> Modules { get; init; } = new Dictionary<string, SharpInferModuleSpec>();

    /// <summary>Suffixes of the tensors a quantized module is stored as.</summary>
    private static readonly string[] Suffixes = ["qweight", "qzeros", "scales", "g_idx", "offsets"];

    /// <summary>Splits "model.layers.0.mlp.up_proj.qweight" into module and suffix when the suffix is a quantized part.</summary>
    public static bool TrySplit(string tensorName, out string module, out string suffix)
    {
        int dot = tensorName.LastIndexOf('.');
        module = dot > 0 ? tensorName[..dot] : "";
        suffix = dot > 0 ? tensorName[(dot + 1)..] : "";
        return dot > 0 && Suffixes.Contains(suffix);
    }

    /// <summary>Reads config.json's quantization_config; null when the model is not quantized.</summary>
    public static HfQuantizationConfig? Read(JsonElement root, string path)
    {
        if (!root.TryGetProperty("quantization_config", out var q) || q.ValueKind == JsonValueKind.Null) return null;
        if (q.ValueKind != JsonValueKind.Object) throw new ModelFormatException(path, "quantization_config must be an object");
        ModelFormatException Fail(string detail) => new(path, $"quantization_config: {detail}");

        string? Str(JsonElement e, string name) =>
            e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        long? Int(JsonElement e, string name) =>
            e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long l) ? l : null;
        bool? Bool(JsonElement e, string name) =>
            e.TryGetProperty(name, out var v) ? v.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => null } : null;

        string method = (Str(q, "quant_method") ?? throw Fail("missing 'quant_method'")).ToLowerInvariant();
        switch (method)
        {
            case "gptq":
            {
                long bits = Int(q, "bits") ?? 4;
                if (bits != 4) throw Fail($"GPTQ with {bits} bits is not supported (this build loads 4-bit GPTQ)");
                if (Bool(q, "desc_act") == true)
                    throw Fail("GPTQ act-order (desc_act = true) is not supported: its g_idx permutes input channels across groups; re-quantize with desc_act = false");
                string format = Str(q, "checkpoint_format") ?? "gptq";
                if (format is not ("gptq" or "gptq_v2"))
                    throw Fail($"GPTQ checkpoint_format '{format}' is not supported (supported: gptq, gptq_v2)");
                return new HfQuantizationConfig { Method = method, GroupSize = GroupSize(Int(q, "group_size")), ZeroPlusOne = format == "gptq" };
            }
            case "awq":
            {
                long bits = Int(q, "bits") ?? Int(q, "w_bit") ?? 4;
                if (bits != 4) throw Fail($"AWQ with {bits} bits is not supported (this build loads 4-bit AWQ)");
                string version = (Str(q, "version") ?? "gemm").ToLowerInvariant();
                if (version != "gemm")
                    throw Fail($"AWQ version '{version}' is not supported (this build loads the GEMM packing)");
                if ((Bool(q, "zero_point") ?? true) == false)
                    throw Fail("AWQ without zero points (zero_point = false) is not supported");
                return new HfQuantizationConfig { Method = method, GroupSize = GroupSize(Int(q, "group_size") ?? Int(q, "q_group_size")) };
            }
            case SharpInferMethod:
            {
                long version = Int(q, "format_version") ?? 0;
                if (version != SharpInferFormatVersion)
                    throw Fail($"sharpinfer format_version {version} is not supported (this build reads {SharpInferFormatVersion})");
                if (!q.TryGetProperty("modules", out var modules) || modules.ValueKind != JsonValueKind.Object)
                    throw Fail("missing object 'modules'");
                var specs = new Dictionary<string, SharpInferModuleSpec>(StringComparer.Ordinal);
                foreach (var m in modules.EnumerateObject())
                {
                    if (m.Value.ValueKind != JsonValueKind.Object) throw Fail($"module '{m.Name}' is not an object");
                    string? formatName = Str(m.Value, "format");
                    if (!QuantFormatNames.TryParse(formatName, out var format))
                        throw Fail($"module '{m.Name}' has format '{formatName}' (expected int8 or int4)");
                    long group = Int(m.Value, "group_size") ?? 0;
                    if (group < 1 || group > int.MaxValue) throw Fail($"module '{m.Name}' has group_size {group} (must be >= 1)");
                    string activations = Str(m.Value, "activations") ?? "float";
                    if (activations is not ("float" or "int8")) throw Fail($"module '{m.Name}' has activations '{activations}' (expected float or int8)");
                    if (activations == "int8" && format != QuantFormat.Int8) throw Fail($"module '{m.Name}': int8 activations need int8 weights");
                    specs[m.Name] = new SharpInferModuleSpec(format, (int)group, activations == "int8" ? QuantActivations.Int8 : QuantActivations.Float);
                }
                return new HfQuantizationConfig { Method = method, Modules = specs };
            }
            default:
                throw Fail($"quant_method '{method}' is not supported (supported: gptq, awq, sharpinfer)");
        }

        int GroupSize(long? value)
        {
            if (value is null) throw Fail("missing 'group_size'");
            if (value == -1) return int.MaxValue; // one group per row; clamped to in_features per tensor
            if (value < 1 || value > int.MaxValue) throw Fail($"group_size {value} must be -1 or positive");
            return (int)value;
        }
    }
}

/// <summary>Builds quantized WeightTensors from the parts of each quantized module.</summary>
internal static unsafe class HfQuantizedTensors
{
    public sealed record Part(SafeTensorsFile File, SafeTensorInfo Info);

    /// <summary>
    /// One module's weight [outFeatures, inFeatures] from its parts. Native buffers it allocates are
    /// added to <paramref name="owned"/>; mapped values stay valid while the safetensors file is open.
    /// </summary>
    public static WeightTensor Build(HfQuantizationConfig config, string module, string canonical,
                                     IReadOnlyDictionary<string, Part> parts, int outFeatures, int inFeatures, List<IDisposable> owned)
    {
        string path = parts.Values.First().File.Path;
        Part Need(string suffix) => parts.TryGetValue(suffix, out var p) ? p
            : throw new ModelFormatException(path, $"quantized module '{module}' has no tensor '{module}.{suffix}' ({config.Method} checkpoints store qweight, {(config.Method == HfQuantizationConfig.SharpInferMethod ? "scales and, for int4, offsets" : "qzeros and scales")})");
        static ReadOnlySpan<byte> Bytes(Part p) => p.File.File.Span(p.Info.FileOffset, checked((int)p.Info.ByteLength));
        static HfInt4Repack.Packed Packed(Part p) => new(Bytes(p), p.Info.DType, p.Info.Shape);

        QuantizedWeight weight;
        switch (config.Method)
        {
            case "gptq":
            {
                int group = Math.Min(config.GroupSize, inFeatures);
                if (parts.TryGetValue("g_idx", out var gIdx))
                    HfInt4Repack.CheckTrivialGIdx(module, Bytes(gIdx), gIdx.Info.DType, gIdx.Info.Shape, inFeatures, group, path);
                RejectUnexpected(parts, path, module, "qweight", "qzeros", "scales", "g_idx");
                weight = HfInt4Repack.RepackGptq(module, Packed(Need("qweight")), Packed(Need("qzeros")), Packed(Need("scales")),
                                                 outFeatures, inFeatures, group, config.ZeroPlusOne, path);
                break;
            }
            case "awq":
                RejectUnexpected(parts, path, module, "qweight", "qzeros", "scales");
                weight = HfInt4Repack.RepackAwq(module, Packed(Need("qweight")), Packed(Need("qzeros")), Packed(Need("scales")),
                                                outFeatures, inFeatures, Math.Min(config.GroupSize, inFeatures), path);
                break;
            default:
                weight = MapSharpInfer(config, module, parts, outFeatures, inFeatures, path, Need);
                break;
        }
        owned.Add(weight);
        return new WeightTensor(canonical, weight, path, config.Method);
    }

    private static void RejectUnexpected(IReadOnlyDictionary<string, Part> parts, string path, string module, params string[] allowed)
    {
        foreach (string suffix in parts.Keys)
            if (!allowed.Contains(suffix))
                throw new ModelFormatException(path, $"tensor '{module}.{suffix}' does not belong in this checkpoint's quantization format");
    }

    /// <summary>Our own layout: values used in place; scales/offsets too when 4-byte aligned, else copied.</summary>
    private static QuantizedWeight MapSharpInfer(HfQuantizationConfig config, string module, IReadOnlyDictionary<string, Part> parts,
                                                 int outFeatures, int inFeatures, string path, Func<string, Part> need)
    {
        if (!config.Modules.TryGetValue(module, out var spec))
            throw new ModelFormatException(path, $"tensor '{module}.qweight' has no entry in quantization_config.modules");
        RejectUnexpected(parts, path, module, spec.Format == QuantFormat.Int4 ? (string[])["qweight", "scales", "offsets"] : ["qweight", "scales"]);
        int groups = QuantizedWeight.GroupCountFor(inFeatures, spec.GroupSize);
        var q = need("qweight");
        string expectedQType = spec.Format == QuantFormat.Int8 ? "I8" : "U8";
        long[] expectedQShape = [outFeatures, QuantizedWeight.RowBytesFor(spec.Format, inFeatures)];
        if (q.Info.DType != expectedQType || !q.Info.Shape.AsSpan().SequenceEqual(expectedQShape))
            throw new ModelFormatException(path,
                $"tensor '{module}.qweight' is {q.Info.DType} [{string.Join(", ", q.Info.Shape)}], but {spec.Format.Name()} [{outFeatures}, {inFeatures}] needs {expectedQType} [{string.Join(", ", expectedQShape)}]");

        nint Floats(string suffix, out HostBuffer<float>? copy)
        {
            copy = null;
            var p = need(suffix);
            if (p.Info.DType != "F32" || p.Info.Shape.Length != 2 || p.Info.Shape[0] != outFeatures)
                throw new ModelFormatException(path, $"tensor '{module}.{suffix}' is {p.Info.DType} [{string.Join(", ", p.Info.Shape)}], expected F32 [{outFeatures}, {groups}]");
            if (p.Info.Shape[1] != groups)
                throw new ModelFormatException(path,
                    $"tensor '{module}.{suffix}' has {p.Info.Shape[1]} groups per row, but group size {spec.GroupSize} over {inFeatures} input channels needs ceil({inFeatures}/{spec.GroupSize}) = {groups}: the stated group size does not fit this tensor");
            nint at = (nint)(p.File.File.Base + p.Info.FileOffset);
            if (at % 4 == 0) return at;
            copy = new HostBuffer<float>((long)outFeatures * groups);
            new ReadOnlySpan<byte>((void*)at, checked((int)p.Info.ByteLength)).CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(copy.AsSpan()));
            return (nint)copy.Pointer;
        }

        nint scales = Floats("scales", out var scalesCopy);
        HostBuffer<float>? offsetsCopy = null;
        nint offsets = spec.Format == QuantFormat.Int4 ? Floats("offsets", out offsetsCopy) : 0;
        return QuantizedWeight.FromExternal(spec.Format, outFeatures, inFeatures, spec.GroupSize, spec.Activations,
                                            (nint)(q.File.File.Base + q.Info.FileOffset), scales, offsets, q.File,
                                            scalesCopy, offsetsCopy);
    }
}
