// SparseCheckpoint.cs: the loader side of sparse checkpoints. Reads config.json's "sparsity_config"
// (written by ModelPruner), builds a sparse WeightTensor from each module's packed tensors (used in
// place from the memory map when aligned) and validates their metadata against the dense shape,
// since the kernels trust it. A config may also claim 2:4 (or bitmask) for dense M.weight tensors:
// those are packed at load, and a 2:4 claim that does not hold is an error naming the tensor.
using System.Text.Json;
using SharpInfer.Models;
using SharpInfer.Models.SafeTensors;
using SharpInfer.Tensors;

namespace SharpInfer.Sparsity;

/// <summary>One module's entry in sparsity_config.modules.</summary>
internal sealed record SparseModuleSpec(SparseFormat Format, long[]? Shape);

/// <summary>The parsed sparsity_config object.</summary>
internal sealed class SparsityConfig
{
    /// <summary>Listed modules by HF module name (e.g. model.layers.0.mlp.up_proj).</summary>
    public required IReadOnlyDictionary<string, SparseModuleSpec> Modules { get; init; }

    /// <summary>With no "modules": the format every block linear weight is claimed to have (stored dense).</summary>
    public SparseFormat? AllLinears { get; init; }

    /// <summary>Suffixes of the tensors a packed sparse module is stored as.</summary>
    private static readonly string[] Suffixes = ["sparse_values", "sparse_meta", "sparse_mask", "sparse_row_offsets"];

    public static bool TrySplit(string tensorName, out string module, out string suffix)
    {
        int dot = tensorName.LastIndexOf('.');
        module = dot > 0 ? tensorName[..dot] : "";
        suffix = dot > 0 ? tensorName[(dot + 1)..] : "";
        return dot > 0 && Suffixes.Contains(suffix);
    }

    /// <summary>Reads config.json's sparsity_config; null when there is none.</summary>
    public static SparsityConfig? Read(JsonElement root, string path)
    {
        if (!root.TryGetProperty(ModelPruner.ConfigSection, out var s) || s.ValueKind == JsonValueKind.Null) return null;
        ModelFormatException Fail(string detail) => new(path, $"{ModelPruner.ConfigSection}: {detail}");
        if (s.ValueKind != JsonValueKind.Object) throw Fail("must be an object");
        long version = s.TryGetProperty("format_version", out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long l) ? l : 0;
        if (version != ModelPruner.FormatVersion)
            throw Fail($"format_version {version} is not supported (this build reads {ModelPruner.FormatVersion})");

        if (!s.TryGetProperty("modules", out var modules) || modules.ValueKind == JsonValueKind.Null)
        {
            // A blanket claim: every block linear weight has this pattern.
            string? pattern = s.TryGetProperty("pattern", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
            SparseFormat format = pattern switch
            {
                "2:4" => SparseFormat.TwoFour,
                "unstructured" or "bitmask" => SparseFormat.Bitmask,
                _ => throw Fail($"without 'modules', 'pattern' must say 2:4 or unstructured (got {(pattern is null ? "nothing" : $"'{pattern}'")})"),
            };
            return new SparsityConfig { Modules = new Dictionary<string, SparseModuleSpec>(), AllLinears = format };
        }
        if (modules.ValueKind != JsonValueKind.Object) throw Fail("'modules' must be an object");
        var specs = new Dictionary<string, SparseModuleSpec>(StringComparer.Ordinal);
        foreach (var m in modules.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.Object) throw Fail($"module '{m.Name}' is not an object");
            string? formatName = m.Value.TryGetProperty("format", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null;
            if (!SparseFormatNames.TryParse(formatName, out var format))
                throw Fail($"module '{m.Name}' has format '{formatName}' (expected 2:4 or bitmask)");
            long[]? shape = null;
            if (m.Value.TryGetProperty("shape", out var sh))
            {
                if (sh.ValueKind != JsonValueKind.Array || sh.GetArrayLength() != 2 ||
                    sh.EnumerateArray().Any(d => d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long x) || x < 1 || x > int.MaxValue))
                    throw Fail($"module '{m.Name}' has shape {sh.GetRawText()} (expected [out, in])");
                shape = sh.EnumerateArray().Select(d => d.GetInt64()).ToArray();
            }
            specs[m.Name] = new SparseModuleSpec(format, shape);
        }
        return new SparsityConfig { Modules = specs };
    }
}

/// <summary>Builds sparse WeightTensors from packed parts, or by packing claimed-sparse dense tensors.</summary>
internal static unsafe class SparseCheckpoint
{
    public sealed record Part(SafeTensorsFile File, SafeTensorInfo Info);

    /// <summary>
    /// One packed module's weight [outFeatures, inFeatures] (the shape the model config implies).
    /// Native copies it makes (of misaligned arrays) are owned by the weight, which is added to <paramref name="owned"/>.
    /// </summary>
    public static WeightTensor Build(SparsityConfig config, string module, string canonical, IReadOnlyDictionary<string, Part> parts,
                                     int outFeatures, int inFeatures, List<IDisposable> owned)
    {
        string path = parts.Values.First().File.Path;
        string Shape(SafeTensorInfo i) => $"{i.DType} [{string.Join(", ", i.Shape)}]";
        if (!config.Modules.TryGetValue(module, out var spec))
            throw new ModelFormatException(path, $"tensor '{module}.{parts.Keys.First()}' is sparse but module '{module}' has no entry in {ModelPruner.ConfigSection}.modules");
        if (spec.Shape is { } recorded && (recorded[0] != outFeatures || recorded[1] != inFeatures))
            throw new ModelFormatException(path, $"{ModelPruner.ConfigSection}.modules['{module}'] records shape [{recorded[0]}, {recorded[1]}], but the model config implies [{outFeatures}, {inFeatures}]");
        string[] expected = spec.Format == SparseFormat.TwoFour ? ["sparse_values", "sparse_meta"] : ["sparse_values", "sparse_mask", "sparse_row_offsets"];
        foreach (string suffix in parts.Keys)
            if (!expected.Contains(suffix))
                throw new ModelFormatException(path, $"tensor '{module}.{suffix}' does not belong to a {spec.Format.Name()} module (it stores {string.Join(", ", expected.Select(e => $"{module}.{e}"))})");
        Part Need(string suffix) => parts.TryGetValue(suffix, out var p) ? p
            : throw new ModelFormatException(path, $"sparse module '{module}' has no tensor '{module}.{suffix}' ({spec.Format.Name()} stores {string.Join(", ", expected)})");

        var values = Need("sparse_values");
        string valuesName = $"{module}.sparse_values";
        var valuesDType = values.Info.DType switch
        {
            "F32" => TensorDType.F32,
            "F16" => TensorDType.F16,
            "BF16" => TensorDType.BF16,
            _ => throw new ModelFormatException(path, $"tensor '{valuesName}' is {values.Info.DType}; sparse values are F32, F16 or BF16"),
        };
        var copies = new List<IDisposable>();
        nint Map(Part p, int alignment)
        {
            nint at = (nint)(p.File.File.Base + p.Info.FileOffset);
            if (at % alignment == 0 || p.Info.ByteLength == 0) return at;
            var copy = new HostBuffer<byte>(p.Info.ByteLength);
            new ReadOnlySpan<byte>((void*)at, checked((int)p.Info.ByteLength)).CopyTo(copy.AsSpan());
            copies.Add(copy);
            return (nint)copy.Pointer;
        }

        SparseWeight weight;
        if (spec.Format == SparseFormat.TwoFour)
        {
            var meta = Need("sparse_meta");
            string metaName = $"{module}.sparse_meta";
            long[] metaShape = [outFeatures, SparsePacking.TwoFourMetaPerRow(inFeatures)];
            if (meta.Info.DType != "U16" || !meta.Info.Shape.AsSpan().SequenceEqual(metaShape))
                throw new ModelFormatException(path,
                    $"tensor '{metaName}' is {Shape(meta.Info)}, but 2:4 metadata for [{outFeatures}, {inFeatures}] is U16 [{metaShape[0]}, {metaShape[1]}] " +
                    $"(one 16-bit word per 16 input columns, {inFeatures} rounded up to {SparsePacking.PaddedColumns(inFeatures)}): the metadata disagrees with the shape");
            long[] valuesShape = [outFeatures, SparsePacking.TwoFourValuesPerRow(inFeatures)];
            if (!values.Info.Shape.AsSpan().SequenceEqual(valuesShape))
                throw new ModelFormatException(path, $"tensor '{valuesName}' is {Shape(values.Info)}, but 2:4 values for [{outFeatures}, {inFeatures}] are [{valuesShape[0]}, {valuesShape[1]}]");
            weight = SparseWeight.FromExternal(SparseFormat.TwoFour, outFeatures, inFeatures, valuesDType,
                                               Map(values, valuesDType.ElementSize()), valuesShape[0] * valuesShape[1], Map(meta, 2), 0, values.File, copies);
            owned.Add(weight);
            weight.Validate(metaName, null, path, valuesName);
        }
        else
        {
            var mask = Need("sparse_mask");
            var offsets = Need("sparse_row_offsets");
            string maskName = $"{module}.sparse_mask", offsetsName = $"{module}.sparse_row_offsets";
            long[] maskShape = [outFeatures, SparsePacking.MaskWordsPerRow(inFeatures)];
            if (mask.Info.DType != "U64" || !mask.Info.Shape.AsSpan().SequenceEqual(maskShape))
                throw new ModelFormatException(path,
                    $"tensor '{maskName}' is {Shape(mask.Info)}, but the bitmask of [{outFeatures}, {inFeatures}] is U64 [{maskShape[0]}, {maskShape[1]}] (one 64-bit word per 64 input columns): the mask disagrees with the shape");
            if (offsets.Info.DType != "I64" || offsets.Info.Shape.Length != 1 || offsets.Info.Shape[0] != outFeatures + 1L)
                throw new ModelFormatException(path, $"tensor '{offsetsName}' is {Shape(offsets.Info)}, but row offsets of {outFeatures} rows are I64 [{outFeatures + 1L}]");
            if (values.Info.Shape.Length != 1)
                throw new ModelFormatException(path, $"tensor '{valuesName}' is {Shape(values.Info)}; bitmask values are one-dimensional [nonzeros]");
            weight = SparseWeight.FromExternal(SparseFormat.Bitmask, outFeatures, inFeatures, valuesDType,
                                               Map(values, valuesDType.ElementSize()), values.Info.Shape[0], Map(mask, 8), Map(offsets, 8), values.File, copies);
            owned.Add(weight);
            weight.Validate(maskName, offsetsName, path, valuesName);
        }
        return new WeightTensor(canonical, weight, path, "sharpinfer-sparse");
    }

    /// <summary>Packs a dense tensor the config claims is sparse; a 2:4 claim that does not hold names the tensor.</summary>
    public static WeightTensor PackDense(WeightTensor dense, string hfName, SparseFormat format, List<IDisposable> owned)
    {
        if (dense.Shape.Length != 2)
            throw new ModelFormatException(dense.SourceFile, $"tensor '{hfName}' is declared {format.Name()} in {ModelPruner.ConfigSection} but is not a matrix");
        var weight = SparseWeight.PackFromDense(dense, hfName, format);
        owned.Add(weight);
        return new WeightTensor(dense.Name, weight, dense.SourceFile, "dense, packed at load");
    }
}
