// ModelQuantizer.cs: `sharpinfer quantize` as a library call. Loads a dense checkpoint (GGUF or HF),
// optionally folds activation-aware scales (ActivationAwareScaling), quantizes every linear layer of
// every block with RTN into the si_qmatmul layout and writes a Hugging Face folder: model.safetensors,
// config.json with a "sharpinfer" quantization_config the runtime loads (values used in place from
// the memory map), and the tokenizer. Embeddings, norms and the LM head stay float.
//
// The format (quant_method "sharpinfer", format_version 1), per quantized module M (an HF module
// name such as model.layers.0.mlp.down_proj):
//   M.qweight  int8: I8 [out, in]; int4: U8 [out, ceil(in/2)], column 2j in the low nibble of byte j
//   M.scales   F32 [out, ceil(in/group)]
//   M.offsets  F32 [out, ceil(in/group)]   (int4 only; w = q * scale + offset)
//   config.json quantization_config.modules[M] = {"format": "int8"|"int4", "group_size": g, "activations": "float"|"int8"}
// The last group of a row is shorter when in % group != 0 (ragged); nothing is padded.
using System.Runtime.InteropServices;
using System.Text.Json;
using SharpInfer.Backends;
using SharpInfer.Llama;
using SharpInfer.Models;
using SharpInfer.Models.HuggingFace;
using SharpInfer.Models.SafeTensors;

namespace SharpInfer.Quantization;

public static unsafe class ModelQuantizer
{
    /// <summary>Progress of a long step: what, how far, out of how much.</summary>
    public delegate void ProgressHandler(string stage, long done, long total);

    /// <summary>Canonical suffixes of the linears quantized in every block.</summary>
    public static IReadOnlyList<string> LinearNames { get; } =
        ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

    public static QuantizeResult Run(string modelPath, string outputDirectory, QuantizeOptions options,
                                     ProgressHandler? progress = null, Action<string>? log = null)
    {
        options.Validate();
        using var checkpoint = ModelLoader.Load(modelPath);
        var config = checkpoint.Config;
        foreach (string name in checkpoint.TensorNames)
            if (checkpoint.GetTensor(name).IsQuantized)
                throw new ArgumentException($"{checkpoint.SourcePath} is already quantized (tensor '{name}' is {checkpoint.GetTensor(name).Quantized!.Describe()}); quantize a dense f32/f16/bf16 model");

        // Every tensor as f32; the original bytes are written back for tensors nothing modifies.
        var values = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (string name in checkpoint.TensorNames) values[name] = checkpoint.GetTensor(name).ToFloat32();
        var modified = new HashSet<string>(StringComparer.Ordinal);
        var notes = new List<string>();
        var searches = new List<ScaleSearchInfo>();
        int calibrationRows = 0;

        var clipRatios = new Dictionary<string, float[]>(StringComparer.Ordinal);
        if (options.Method == QuantMethod.Aware)
            calibrationRows = FoldActivationAwareScales(checkpoint, values, modified, options, searches, clipRatios, progress, log);

        // GGUF llama/mistral q/k rows are in adjacent-pair RoPE order; an HF folder needs rotate-half order.
        bool permuteQk = checkpoint.Format == "gguf" && config.RopeLayout == RopeLayout.AdjacentPairs;
        if (permuteQk)
        {
            for (int l = 0; l < config.NumLayers; l++)
            {
                PermuteToRotateHalf(values[LlamaTensorNames.AttnQ(l)], config.NumHeads, config.HeadDim, config.HiddenSize);
                PermuteToRotateHalf(values[LlamaTensorNames.AttnK(l)], config.NumKvHeads, config.HeadDim, config.HiddenSize);
                if (config.AttentionBias)
                {
                    PermuteToRotateHalf(values[LlamaTensorNames.AttnQBias(l)], config.NumHeads, config.HeadDim, 1);
                    PermuteToRotateHalf(values[LlamaTensorNames.AttnKBias(l)], config.NumKvHeads, config.HeadDim, 1);
                }
            }
            notes.Add("q/k rows permuted from GGUF adjacent-pair order to Hugging Face rotate-half order");
        }

        // Quantize.
        var format = options.Scheme.WeightFormat();
        var activations = options.Scheme.Activations();
        var infos = new List<QuantizedTensorInfo>();
        var entries = new List<SafeTensorsEntry>();
        var moduleSpecs = new List<(string Module, QuantizedTensorInfo Info)>();
        var linearNames = Enumerable.Range(0, config.NumLayers).SelectMany(l => LinearNames.Select(n => $"blk.{l}.{n}.weight")).ToHashSet(StringComparer.Ordinal);
        long done = 0;
        foreach (string name in checkpoint.TensorNames)
        {
            var tensor = checkpoint.GetTensor(name);
            string hfName = LlamaTensorNames.ToHuggingFace(name);
            if (linearNames.Contains(name) && !options.WriteDenseLinears)
            {
                int rows = (int)tensor.Shape[0], columns = (int)tensor.Shape[1];
                int group = options.GroupSize == 0 ? columns : Math.Min(options.GroupSize, columns);
                using var q = RtnQuantizer.Quantize(values[name], rows, columns, format, group, activations, clipRatios.GetValueOrDefault(name));
                string module = hfName[..^".weight".Length];
                entries.Add(new SafeTensorsEntry(module + ".qweight", format == QuantFormat.Int8 ? "I8" : "U8", [rows, q.RowBytes],
                                                 Copy((byte*)q.QData, rows * q.RowBytes)));
                entries.Add(new SafeTensorsEntry(module + ".scales", "F32", [rows, q.GroupCount], CopyFloats(q.ScalesData, (long)rows * q.GroupCount)));
                if (format == QuantFormat.Int4)
                    entries.Add(new SafeTensorsEntry(module + ".offsets", "F32", [rows, q.GroupCount], CopyFloats(q.OffsetsData, (long)rows * q.GroupCount)));
                var info = new QuantizedTensorInfo(name, rows, columns, format, group, activations);
                infos.Add(info);
                moduleSpecs.Add((module, info));
            }
            else if (modified.Contains(name) || permuteQk && (IsQkBias(name) || linearNames.Contains(name)))
            {
                entries.Add(new SafeTensorsEntry(hfName, "F32", tensor.Shape, MemoryMarshal.AsBytes(values[name].AsSpan()).ToArray()));
            }
            else
            {
                entries.Add(new SafeTensorsEntry(hfName, tensor.DType switch { TensorDType.F16 => "F16", TensorDType.BF16 => "BF16", _ => "F32" },
                                                 tensor.Shape, tensor.Bytes.ToArray()));
            }
            progress?.Invoke("quantizing", ++done, checkpoint.TensorNames.Count);
        }

        foreach (var group in infos.Where(i => i.IsRagged).GroupBy(i => (i.Columns, i.GroupSize)))
            notes.Add($"{group.Count()} tensor(s) with {group.Key.Columns} input columns ({string.Join(", ", group.Select(i => i.Name).Take(3))}{(group.Count() > 3 ? ", ..." : "")}) " +
                      $"are not a multiple of group {group.Key.GroupSize}: each row's last group holds {group.First().LastGroupSize} columns (ragged last group, supported by si_qmatmul)");

        Directory.CreateDirectory(outputDirectory);
        string modelFile = Path.Combine(outputDirectory, "model.safetensors");
        SafeTensorsWriter.Write(modelFile, entries, new Dictionary<string, string> { ["format"] = "pt", ["quantized_by"] = "sharpinfer" });
        WriteConfig(checkpoint, Path.Combine(outputDirectory, "config.json"), options, moduleSpecs);
        WriteTokenizer(checkpoint, outputDirectory);

        return new QuantizeResult
        {
            OutputDirectory = outputDirectory,
            Tensors = infos,
            Searches = searches,
            Notes = notes,
            OutputBytes = new FileInfo(modelFile).Length,
            CalibrationTokens = calibrationRows,
        };
    }

    private static bool IsQkBias(string name) => name.EndsWith(".attn_q.bias", StringComparison.Ordinal) || name.EndsWith(".attn_k.bias", StringComparison.Ordinal);

    private static int FoldActivationAwareScales(ModelCheckpoint checkpoint, Dictionary<string, float[]> values, HashSet<string> modified,
                                                 QuantizeOptions options, List<ScaleSearchInfo> searches, Dictionary<string, float[]> clipRatios,
                                                 ProgressHandler? progress, Action<string>? log)
    {
        var c = checkpoint.Config;
        int qDim = c.NumHeads * c.HeadDim, kvDim = c.NumKvHeads * c.HeadDim;
        var watched = new HashSet<string>(StringComparer.Ordinal);
        for (int l = 0; l < c.NumLayers; l++)
        {
            watched.Add(LlamaTensorNames.AttnQ(l));
            watched.Add(LlamaTensorNames.AttnOutput(l));
            watched.Add(LlamaTensorNames.FfnGate(l));
            watched.Add(LlamaTensorNames.FfnDown(l));
        }

        using var backend = ComputeBackend.Open(BackendKind.Cpu, options.Threads);
        Dictionary<string, CapturedActivations> captured;
        using (var model = new LlamaModel(checkpoint, backend))
            captured = Calibration.Capture(model, checkpoint.Tokenizer, options.CalibrationText!, options.CalibrationTokens, watched,
                                           (d, t) => progress?.Invoke("calibrating", d, t));
        int rows = captured.Values.Select(a => a.Rows).DefaultIfEmpty(0).Min();
        log?.Invoke($"calibration: {rows} token rows per linear layer");

        var search = new ActivationAwareScaling(backend.Context, options.Scheme, options.GroupSize, options.GridPoints);
        int[] Identity(int n) => Enumerable.Range(0, n).ToArray();
        ActivationAwareScaling.Consumer Consumer(string name, int outFeatures)
        {
            modified.Add(name);
            return new ActivationAwareScaling.Consumer(name, values[name], outFeatures);
        }
        ActivationAwareScaling.FoldTarget Target(string name, int rowLength, string? biasName = null)
        {
            modified.Add(name);
            float[]? bias = null;
            if (biasName is not null && values.TryGetValue(biasName, out var b))
            {
                bias = b;
                modified.Add(biasName);
            }
            return new ActivationAwareScaling.FoldTarget(name, values[name], rowLength, bias);
        }

        // o_proj input channel h*hd + j comes from v_proj row (h / group)*hd + j: those share one scale.
        int[] oToV = Enumerable.Range(0, qDim).Select(ch => ch / c.HeadDim / c.GqaGroupSize * c.HeadDim + ch % c.HeadDim).ToArray();
        for (int l = 0; l < c.NumLayers; l++)
        {
            searches.Add(search.SearchAndFold($"blk.{l}.attn_q/k/v", captured[LlamaTensorNames.AttnQ(l)],
                [Consumer(LlamaTensorNames.AttnQ(l), qDim), Consumer(LlamaTensorNames.AttnK(l), kvDim), Consumer(LlamaTensorNames.AttnV(l), kvDim)],
                Target(LlamaTensorNames.AttnNorm(l), 1), Identity(c.HiddenSize), c.HiddenSize, clipRatios));
            searches.Add(search.SearchAndFold($"blk.{l}.attn_output", captured[LlamaTensorNames.AttnOutput(l)],
                [Consumer(LlamaTensorNames.AttnOutput(l), c.HiddenSize)],
                Target(LlamaTensorNames.AttnV(l), c.HiddenSize, LlamaTensorNames.AttnVBias(l)), oToV, kvDim, clipRatios));
            searches.Add(search.SearchAndFold($"blk.{l}.ffn_gate/up", captured[LlamaTensorNames.FfnGate(l)],
                [Consumer(LlamaTensorNames.FfnGate(l), c.IntermediateSize), Consumer(LlamaTensorNames.FfnUp(l), c.IntermediateSize)],
                Target(LlamaTensorNames.FfnNorm(l), 1), Identity(c.HiddenSize), c.HiddenSize, clipRatios));
            searches.Add(search.SearchAndFold($"blk.{l}.ffn_down", captured[LlamaTensorNames.FfnDown(l)],
                [Consumer(LlamaTensorNames.FfnDown(l), c.HiddenSize)],
                Target(LlamaTensorNames.FfnUp(l), c.HiddenSize), Identity(c.IntermediateSize), c.IntermediateSize, clipRatios));
            progress?.Invoke("scale search", l + 1, c.NumLayers);
        }
        return rows;
    }

    /// <summary>
    /// Reorders rows inside each head from adjacent-pair to rotate-half order: new row
    /// h*hd + j*hd/2 + i = old row h*hd + 2i + j (transformers' convert_llama_weights_to_hf permute).
    /// </summary>
    internal static void PermuteToRotateHalf(float[] weight, int heads, int headDim, int rowLength)
    {
        var copy = (float[])weight.Clone();
        int half = headDim / 2;
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < half; i++)
                    Array.Copy(copy, ((long)h * headDim + 2 * i + j) * rowLength, weight, ((long)h * headDim + j * half + i) * rowLength, rowLength);
    }

    private static unsafe byte[] Copy(byte* source, long length) => new ReadOnlySpan<byte>(source, checked((int)length)).ToArray();

    private static unsafe byte[] CopyFloats(nint source, long count) => Copy((byte*)source, count * 4);

    // ---- config.json and tokenizer ------------------------------------------------------------------

    private static void WriteConfig(ModelCheckpoint checkpoint, string path, QuantizeOptions options,
                                    List<(string Module, QuantizedTensorInfo Info)> modules)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        WriteModelConfigFields(w, checkpoint, "quantization_config");

        w.WriteStartObject("quantization_config");
        w.WriteString("quant_method", HfQuantizationConfig.SharpInferMethod);
        w.WriteNumber("format_version", HfQuantizationConfig.SharpInferFormatVersion);
        w.WriteString("scheme", options.Scheme.Name());
        w.WriteString("method", options.Method.Name());
        w.WriteNumber("group_size", options.GroupSize);
        w.WriteString("layout", "qweight int8 [out, in] or uint4 [out, ceil(in/2)] (low nibble = even column); " +
                                "scales/offsets f32 [out, ceil(in/group)]; w = q*scale (+ offset for int4); ragged last group");
        w.WriteStartObject("modules");
        foreach (var (module, info) in modules)
        {
            w.WriteStartObject(module);
            w.WriteString("format", info.Format.Name());
            w.WriteNumber("group_size", info.GroupSize);
            w.WriteString("activations", info.Activations.Name());
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>
    /// Writes the model fields of a Hugging Face config.json: the source config's own fields for an HF
    /// checkpoint (minus <paramref name="skip"/>, which the caller writes), else the fields our loader
    /// reads, derived from a GGUF model's config. Shared with `sharpinfer prune`.
    /// </summary>
    internal static void WriteModelConfigFields(Utf8JsonWriter w, ModelCheckpoint checkpoint, params string[] skip)
    {
        var c = checkpoint.Config;
        string? sourceConfig = checkpoint.Format == "hf" ? Path.Combine(checkpoint.SourcePath, "config.json") : null;
        if (sourceConfig is not null)
        {
            // Keep everything the source says; only the sections named in skip are the caller's.
            using var doc = JsonDocument.Parse(File.ReadAllBytes(sourceConfig), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            foreach (var property in doc.RootElement.EnumerateObject())
                if (!skip.Contains(property.Name)) property.WriteTo(w);
            return;
        }
        (string cls, string type) = c.Architecture switch
        {
            "mistral" => ("MistralForCausalLM", "mistral"),
            "qwen2" => ("Qwen2ForCausalLM", "qwen2"),
            _ => ("LlamaForCausalLM", "llama"),
        };
        w.WriteStartArray("architectures");
        w.WriteStringValue(cls);
        w.WriteEndArray();
        w.WriteString("model_type", type);
        w.WriteNumber("vocab_size", c.VocabSize);
        w.WriteNumber("hidden_size", c.HiddenSize);
        w.WriteNumber("intermediate_size", c.IntermediateSize);
        w.WriteNumber("num_hidden_layers", c.NumLayers);
        w.WriteNumber("num_attention_heads", c.NumHeads);
        w.WriteNumber("num_key_value_heads", c.NumKvHeads);
        w.WriteNumber("head_dim", c.HeadDim);
        w.WriteNumber("max_position_embeddings", c.MaxContext);
        w.WriteNumber("rope_theta", c.RopeTheta);
        w.WriteNumber("rms_norm_eps", c.RmsNormEps);
        w.WriteString("hidden_act", "silu");
        w.WriteBoolean("tie_word_embeddings", !checkpoint.TryGetTensor(LlamaTensorNames.Output, out _));
        if (c.Architecture != "qwen2") w.WriteBoolean("attention_bias", c.AttentionBias);
        w.WriteNumber("bos_token_id", c.BosTokenId);
        w.WriteStartArray("eos_token_id");
        foreach (int id in c.EosTokenIds) w.WriteNumberValue(id);
        w.WriteEndArray();
        if (c.RopeScale != 1f)
        {
            w.WriteStartObject("rope_scaling");
            w.WriteString("type", "linear");
            w.WriteNumber("factor", 1.0 / c.RopeScale);
            w.WriteEndObject();
        }
        w.WriteString("torch_dtype", "float32");
    }

    internal static void WriteTokenizer(ModelCheckpoint checkpoint, string outputDirectory)
    {
        if (checkpoint.Format == "hf")
        {
            foreach (string file in (string[])["tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "tokenizer.json"])
            {
                string source = Path.Combine(checkpoint.SourcePath, file);
                if (File.Exists(source)) File.Copy(source, Path.Combine(outputDirectory, file), overwrite: true);
            }
            return;
        }
        // GGUF: the vocabulary lives in metadata; write it as a SentencePiece model.
        var tokenizer = checkpoint.Tokenizer;
        File.WriteAllBytes(Path.Combine(outputDirectory, "tokenizer.model"), tokenizer.Model.Serialize());
        using var stream = new FileStream(Path.Combine(outputDirectory, "tokenizer_config.json"), FileMode.Create, FileAccess.Write);
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteString("tokenizer_class", "LlamaTokenizer");
        w.WriteBoolean("add_bos_token", tokenizer.AddBosToken);
        w.WriteBoolean("add_eos_token", tokenizer.AddEosToken);
        if (checkpoint.ChatTemplate is { } template) w.WriteString("chat_template", template);
        w.WriteEndObject();
    }
}
