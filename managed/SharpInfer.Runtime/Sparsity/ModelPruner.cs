// ModelPruner.cs: `sharpinfer prune` as a library call. Loads a dense checkpoint (GGUF or HF),
// optionally runs calibration text through it to collect Wanda's input-channel norms, prunes the
// seven linear layers of every block (2:4, or unstructured at sparsity S), packs each into its
// si_sparse_matmul layout and writes a Hugging Face folder the runtime loads: model.safetensors,
// config.json with a "sparsity_config" section, and the tokenizer. Embeddings, norms and the LM head
// stay dense.
//
// The format (sparsity_config.format_version 1), per pruned module M (an HF module name such as
// model.layers.0.mlp.up_proj), values in the source tensor's dtype (F32/F16/BF16):
//   2:4:      M.sparse_values [out, kp/2]   M.sparse_meta U16 [out, kp/16]        (kp = in rounded up to 16)
//   bitmask:  M.sparse_values [nonzeros]    M.sparse_mask U64 [out, ceil(in/64)]  M.sparse_row_offsets I64 [out + 1]
//   config.json sparsity_config.modules[M] = {"format": "2:4"|"bitmask", "shape": [out, in], "nonzeros": N}
// (the layouts are the ABI's, sharpinfer.h; the dense shape is recorded because the packed tensors do
// not determine it). A config may instead claim 2:4 for dense M.weight tensors: the loader packs
// those at load (see SparseCheckpoint).
using System.Runtime.InteropServices;
using System.Text.Json;
using SharpInfer.Backends;
using SharpInfer.Llama;
using SharpInfer.Models;
using SharpInfer.Models.SafeTensors;
using SharpInfer.Quantization;

namespace SharpInfer.Sparsity;

/// <summary>What `sharpinfer prune` asks for.</summary>
public sealed class PruneOptions
{
    public SparsityPattern Pattern { get; init; } = SparsityPattern.TwoFour;

    /// <summary>Fraction of each row zeroed (unstructured); 2:4 is always 0.5.</summary>
    public double Sparsity { get; init; } = 0.5;

    public PruneMethod Method { get; init; } = PruneMethod.Magnitude;

    /// <summary>Calibration text (Wanda).</summary>
    public string? CalibrationText { get; init; }

    /// <summary>Most calibration tokens run through the model.</summary>
    public int CalibrationTokens { get; init; } = 2048;

    /// <summary>CPU threads for calibration (0 = all).</summary>
    public int Threads { get; init; }

    public void Validate()
    {
        if (Pattern == SparsityPattern.TwoFour && Math.Abs(Sparsity - 0.5) > 1e-9)
            throw new ArgumentException($"--pattern 2:4 is 50% sparse by construction; --sparsity {Sparsity} does not apply (omit it or pass 0.5)");
        if (Pattern == SparsityPattern.Unstructured && !(Sparsity > 0 && Sparsity < 1))
            throw new ArgumentException($"--sparsity must be in (0, 1) for unstructured pruning (got {Sparsity})");
        if (Method == PruneMethod.Wanda && string.IsNullOrWhiteSpace(CalibrationText))
            throw new ArgumentException("--method wanda needs calibration text (--calib FILE)");
        if (CalibrationTokens < 1) throw new ArgumentException($"--calib-tokens must be >= 1 (got {CalibrationTokens})");
        if (Threads < 0) throw new ArgumentException($"--threads must be >= 0 (got {Threads})");
    }
}

/// <summary>One pruned tensor in the result.</summary>
public sealed record PrunedTensorInfo(string Name, int Rows, int Columns, SparseFormat Format, long NonZeros, long PackedBytes, long DenseBytes)
{
    public double Sparsity => 1.0 - (double)NonZeros / ((double)Rows * Columns);
}

public sealed class PruneResult
{
    public required string OutputDirectory { get; init; }
    public required IReadOnlyList<PrunedTensorInfo> Tensors { get; init; }
    public required IReadOnlyList<string> Notes { get; init; }
    public long OutputBytes { get; init; }
    public int CalibrationTokens { get; init; }
}

public static class ModelPruner
{
    /// <summary>Progress of a long step: what, how far, out of how much.</summary>
    public delegate void ProgressHandler(string stage, long done, long total);

    public const string ConfigSection = "sparsity_config";
    public const int FormatVersion = 1;

    public static PruneResult Run(string modelPath, string outputDirectory, PruneOptions options,
                                  ProgressHandler? progress = null, Action<string>? log = null)
    {
        options.Validate();
        using var checkpoint = ModelLoader.Load(modelPath);
        var config = checkpoint.Config;
        foreach (string name in checkpoint.TensorNames)
        {
            var t = checkpoint.GetTensor(name);
            if (t.IsQuantized || t.IsSparse)
                throw new ArgumentException($"{checkpoint.SourcePath} is already {(t.IsSparse ? "sparse" : "quantized")} (tensor '{name}' is " +
                                            $"{(t.IsSparse ? t.Sparse!.Describe() : t.Quantized!.Describe())}); prune a dense f32/f16/bf16 model");
        }

        var notes = new List<string>();
        Dictionary<string, float[]>? norms = null;
        int calibrationTokens = 0;
        if (options.Method == PruneMethod.Wanda)
        {
            using var backend = ComputeBackend.Open(BackendKind.Cpu, options.Threads);
            using var model = new LlamaModel(checkpoint, backend);
            (norms, calibrationTokens) = WandaCalibration.CollectInputNorms(model, checkpoint.Tokenizer, options.CalibrationText!,
                                                                            options.CalibrationTokens, (d, t) => progress?.Invoke("calibrating", d, t));
            log?.Invoke($"calibration: {calibrationTokens} tokens");
        }

        // GGUF llama/mistral q/k rows are in adjacent-pair RoPE order; an HF folder needs rotate-half order.
        // Pruning is per row, so permuting rows before or after pruning gives the same weights.
        bool permuteQk = checkpoint.Format == "gguf" && config.RopeLayout == RopeLayout.AdjacentPairs;
        if (permuteQk) notes.Add("q/k rows permuted from GGUF adjacent-pair order to Hugging Face rotate-half order");

        var linearNames = Enumerable.Range(0, config.NumLayers)
            .SelectMany(l => ModelQuantizer.LinearNames.Select(n => $"blk.{l}.{n}.weight")).ToHashSet(StringComparer.Ordinal);
        var entries = new List<SafeTensorsEntry>();
        var infos = new List<PrunedTensorInfo>();
        var modules = new List<(string Module, PrunedTensorInfo Info)>();
        long done = 0;
        foreach (string name in checkpoint.TensorNames)
        {
            var tensor = checkpoint.GetTensor(name);
            string hfName = LlamaTensorNames.ToHuggingFace(name);
            string dtypeName = tensor.DType switch { TensorDType.F16 => "F16", TensorDType.BF16 => "BF16", _ => "F32" };
            if (linearNames.Contains(name))
            {
                int rows = (int)tensor.Shape[0], columns = (int)tensor.Shape[1];
                float[] w = tensor.ToFloat32();
                if (permuteQk) PermuteIfQk(name, w, config, columns);
                float[]? inputNorms = null;
                if (norms is not null && !norms.TryGetValue(name, out inputNorms))
                    throw new InvalidOperationException($"calibration saw no input for {name}");
                Pruner.Prune(w, rows, columns, options.Pattern, options.Sparsity, inputNorms);
                using var packed = SparseWeight.Pack(name, w, rows, columns, options.Pattern.Format(), tensor.DType, checkpoint.SourcePath);
                string module = hfName[..^".weight".Length];
                int size = tensor.DType.ElementSize();
                long[] valuesShape = packed.Format == SparseFormat.TwoFour ? [rows, SparsePacking.TwoFourValuesPerRow(columns)] : [packed.ValueCount];
                entries.Add(new SafeTensorsEntry(module + ".sparse_values", dtypeName, valuesShape, Copy(packed.Values, packed.ValueCount * size)));
                if (packed.Format == SparseFormat.TwoFour)
                {
                    entries.Add(new SafeTensorsEntry(module + ".sparse_meta", "U16", [rows, SparsePacking.TwoFourMetaPerRow(columns)], Copy(packed.Index, packed.IndexLength * 2)));
                }
                else
                {
                    entries.Add(new SafeTensorsEntry(module + ".sparse_mask", "U64", [rows, SparsePacking.MaskWordsPerRow(columns)], Copy(packed.Index, packed.IndexLength * 8)));
                    entries.Add(new SafeTensorsEntry(module + ".sparse_row_offsets", "I64", [rows + 1L], Copy(packed.RowOffsets, (rows + 1L) * 8)));
                }
                long nonZeros = w.LongCount(v => v != 0);
                var info = new PrunedTensorInfo(name, rows, columns, packed.Format, nonZeros, packed.ByteLength, packed.DenseByteLength);
                infos.Add(info);
                modules.Add((module, info));
            }
            else if (permuteQk && IsQkBias(name))
            {
                float[] b = tensor.ToFloat32();
                PermuteIfQk(name, b, config, 1);
                entries.Add(new SafeTensorsEntry(hfName, "F32", tensor.Shape, MemoryMarshal.AsBytes(b.AsSpan()).ToArray()));
            }
            else
            {
                entries.Add(new SafeTensorsEntry(hfName, dtypeName, tensor.Shape, tensor.Bytes.ToArray()));
            }
            progress?.Invoke("pruning", ++done, checkpoint.TensorNames.Count);
        }
        notes.Add($"left dense: {LlamaTensorNames.TokenEmbedding}{(checkpoint.TryGetTensor(LlamaTensorNames.Output, out _) ? ", " + LlamaTensorNames.Output : " (also the tied LM head)")}, norms");

        Directory.CreateDirectory(outputDirectory);
        string modelFile = Path.Combine(outputDirectory, "model.safetensors");
        SafeTensorsWriter.Write(modelFile, entries, new Dictionary<string, string> { ["format"] = "pt", ["pruned_by"] = "sharpinfer" });
        WriteConfig(checkpoint, Path.Combine(outputDirectory, "config.json"), options, calibrationTokens, modules);
        ModelQuantizer.WriteTokenizer(checkpoint, outputDirectory);
        return new PruneResult
        {
            OutputDirectory = outputDirectory,
            Tensors = infos,
            Notes = notes,
            OutputBytes = new FileInfo(modelFile).Length,
            CalibrationTokens = calibrationTokens,
        };
    }

    private static bool IsQkBias(string name) => name.EndsWith(".attn_q.bias", StringComparison.Ordinal) || name.EndsWith(".attn_k.bias", StringComparison.Ordinal);

    private static void PermuteIfQk(string name, float[] values, LlamaConfig c, int rowLength)
    {
        if (name.Contains(".attn_q.", StringComparison.Ordinal)) ModelQuantizer.PermuteToRotateHalf(values, c.NumHeads, c.HeadDim, rowLength);
        else if (name.Contains(".attn_k.", StringComparison.Ordinal)) ModelQuantizer.PermuteToRotateHalf(values, c.NumKvHeads, c.HeadDim, rowLength);
    }

    private static unsafe byte[] Copy(nint source, long bytes) => new ReadOnlySpan<byte>((void*)source, checked((int)bytes)).ToArray();

    private static void WriteConfig(ModelCheckpoint checkpoint, string path, PruneOptions options, int calibrationTokens,
                                    List<(string Module, PrunedTensorInfo Info)> modules)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        ModelQuantizer.WriteModelConfigFields(w, checkpoint, ConfigSection);
        w.WriteStartObject(ConfigSection);
        w.WriteNumber("format_version", FormatVersion);
        w.WriteString("pattern", options.Pattern.Name());
        w.WriteNumber("sparsity", options.Sparsity);
        w.WriteString("method", options.Method.Name());
        if (options.Method == PruneMethod.Wanda) w.WriteNumber("calibration_tokens", calibrationTokens);
        w.WriteString("layout", "2:4: sparse_values [out, kp/2], sparse_meta u16 [out, kp/16] (kp = in rounded up to 16; 4 bits per group of 4: " +
                                "first kept position in bits 0-1, second in 2-3); bitmask: sparse_mask u64 [out, ceil(in/64)], " +
                                "sparse_values [nonzeros] row by row in column order, sparse_row_offsets i64 [out + 1]");
        w.WriteStartObject("modules");
        foreach (var (module, info) in modules)
        {
            w.WriteStartObject(module);
            w.WriteString("format", info.Format.Name());
            w.WriteStartArray("shape");
            w.WriteNumberValue(info.Rows);
            w.WriteNumberValue(info.Columns);
            w.WriteEndArray();
            w.WriteNumber("nonzeros", info.NonZeros);
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
