// SyntheticModel.cs: writes random-weight Llama GGUF files of any size (e.g. TinyLlama-1.1B dims)
// for tests and benchmarks. Weights are ~N(0, 0.02) from a seeded generator, norms are 1, and
// tensors are generated chunk by chunk in parallel and streamed to disk, never held whole.
// Matrices may be stored dense (F32/F16/BF16) or block-quantized (Q8_0/Q4_0).
using System.Buffers;
using SharpInfer.Models.Gguf;
using SharpInfer.Quantization;
using SharpInfer.Tokenization;

namespace SharpInfer.Models;

public static class SyntheticModel
{
    /// <summary>Elements per independently seeded chunk (values do not depend on thread count).</summary>
    internal const int ChunkElements = 1 << 20;

    public const float WeightStdDev = 0.02f;

    /// <summary>TinyLlama-1.1B dimensions (vocab 32000, ctx 2048).</summary>
    public static LlamaConfig TinyLlama1B { get; } = new()
    {
        VocabSize = 32000, HiddenSize = 2048, IntermediateSize = 5632, NumLayers = 22,
        NumHeads = 32, NumKvHeads = 4, HeadDim = 64, MaxContext = 2048, RmsNormEps = 1e-5f,
    };

    /// <summary>
    /// One transformer block of Llama-2-7B's dimensions (hidden 4096, ffn 11008, 32 heads of 128, no
    /// GQA, vocab 32000): end-to-end figures at the matrix sizes of a 7B model without its 13 GB.
    /// </summary>
    public static LlamaConfig Llama7BLayer { get; } = new()
    {
        VocabSize = 32000, HiddenSize = 4096, IntermediateSize = 11008, NumLayers = 1,
        NumHeads = 32, NumKvHeads = 32, HeadDim = 128, MaxContext = 4096, RmsNormEps = 1e-5f,
    };

    /// <summary>A tiny model for fast tests: 2 layers, hidden 64, 4 heads / 2 KV heads, vocab 512.</summary>
    public static LlamaConfig Tiny { get; } = new()
    {
        VocabSize = 512, HiddenSize = 64, IntermediateSize = 160, NumLayers = 2,
        NumHeads = 4, NumKvHeads = 2, HeadDim = 16, MaxContext = 256, RmsNormEps = 1e-5f,
    };

    /// <summary>
    /// Writes a random-weight GGUF for <paramref name="config"/>'s dims. Matrices are stored as
    /// <paramref name="dtype"/>, 1-D tensors (norms, biases) as F32, as llama.cpp does. The vocabulary
    /// comes from <paramref name="tokenizer"/> (padded with unused pieces up to VocabSize) or, when
    /// null, from a built-in byte-level vocabulary. Tied configs get no output.weight. Architecture,
    /// theta, eps, linear rope scale and q/k/v biases are honored; the BOS/EOS ids are the tokenizer's.
    /// </summary>
    public static GgufLayout Write(string path, LlamaConfig config, TensorDType dtype, int seed, TextTokenizer? tokenizer = null) =>
        Write(path, config, GgmlTypeInfo.FromDType(dtype), seed, tokenizer);

    /// <summary>
    /// Writes a random-weight GGUF whose matrices are stored as <paramref name="matrixType"/>: F32, F16,
    /// BF16, or the block-quantized Q8_0 / Q4_0 (encoded as llama.cpp's reference quantizers do; every
    /// matrix's row length must be a multiple of 32). The values before encoding are those of
    /// <see cref="GenerateValues"/>.
    /// </summary>
    public static GgufLayout Write(string path, LlamaConfig config, GgmlType matrixType, int seed, TextTokenizer? tokenizer = null)
    {
        if (matrixType is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 or GgmlType.Q8_0 or GgmlType.Q4_0))
            throw new ArgumentException($"synthetic models store matrices as F32, F16, BF16, Q8_0 or Q4_0 (not {GgmlTypeInfo.Name(matrixType)})");
        ArgumentNullException.ThrowIfNull(config);
        var vocabulary = BuildVocabulary(config.VocabSize, tokenizer);
        var probe = config with { BosTokenId = vocabulary.BosId, EosTokenIds = [vocabulary.EosId] };
        probe.Validate(path);

        string a = config.Architecture;
        var metadata = new List<KeyValuePair<string, GgufValue>>
        {
            new("general.architecture", GgufValue.String(a)),
            new("general.name", GgufValue.String($"synthetic-{a}-seed{seed}")),
            new("general.file_type", GgufValue.UInt32(matrixType switch
            {
                GgmlType.F32 => 0u, GgmlType.F16 => 1u, GgmlType.Q4_0 => 2u, GgmlType.Q8_0 => 7u, _ => 32u,
            })),
            new($"{a}.vocab_size", GgufValue.UInt32((uint)config.VocabSize)),
            new($"{a}.context_length", GgufValue.UInt32((uint)config.MaxContext)),
            new($"{a}.embedding_length", GgufValue.UInt32((uint)config.HiddenSize)),
            new($"{a}.block_count", GgufValue.UInt32((uint)config.NumLayers)),
            new($"{a}.feed_forward_length", GgufValue.UInt32((uint)config.IntermediateSize)),
            new($"{a}.attention.head_count", GgufValue.UInt32((uint)config.NumHeads)),
            new($"{a}.attention.head_count_kv", GgufValue.UInt32((uint)config.NumKvHeads)),
            new($"{a}.rope.dimension_count", GgufValue.UInt32((uint)config.HeadDim)),
            new($"{a}.rope.freq_base", GgufValue.Float32(config.RopeTheta)),
            new($"{a}.attention.layer_norm_rms_epsilon", GgufValue.Float32(config.RmsNormEps)),
        };
        if ((long)config.NumHeads * config.HeadDim != config.HiddenSize)
        {
            metadata.Add(new($"{a}.attention.key_length", GgufValue.UInt32((uint)config.HeadDim)));
            metadata.Add(new($"{a}.attention.value_length", GgufValue.UInt32((uint)config.HeadDim)));
        }
        if (config.RopeScale != 1f)
        {
            metadata.Add(new($"{a}.rope.scaling.type", GgufValue.String("linear")));
            metadata.Add(new($"{a}.rope.scaling.factor", GgufValue.Float32(1f / config.RopeScale)));
        }
        metadata.AddRange(TokenizerMetadata(vocabulary));

        var tensors = new List<GgufTensorData>();
        foreach (var (name, shape) in LlamaTensorNames.Expected(config, includeOutput: !config.TieWordEmbeddings))
        {
            bool isVector = shape.Length == 1;
            bool isNorm = name.EndsWith("norm.weight", StringComparison.Ordinal);
            var storedAs = isVector ? GgmlType.F32 : matrixType;
            if (!isVector && GgufRepack.IsSupported(storedAs) && shape[^1] % 32 != 0)
                throw new ArgumentException($"tensor {name} has rows of {shape[^1]} values, not a multiple of the {storedAs} block of 32");
            long count = shape.Aggregate(1L, (x, y) => x * y);
            tensors.Add(new GgufTensorData(name, shape, storedAs, EncodedBytes(storedAs, count),
                stream => WriteValues(stream, name, count, seed, storedAs, isNorm)));
        }
        return GgufWriter.Write(path, metadata, tensors);
    }

    /// <summary>
    /// The float32 values <see cref="Write"/> generates for tensor <paramref name="name"/> (before any
    /// F16/BF16 rounding). Norm weights are all 1.
    /// </summary>
    public static float[] GenerateValues(string name, long count, int seed)
    {
        var values = new float[count];
        if (name.EndsWith("norm.weight", StringComparison.Ordinal))
        {
            values.AsSpan().Fill(1f);
            return values;
        }
        ulong nameHash = Fnv1a(name);
        long chunks = (count + ChunkElements - 1) / ChunkElements;
        Parallel.For(0L, chunks, c =>
        {
            int length = (int)Math.Min(ChunkElements, count - c * ChunkElements);
            FillChunk(values.AsSpan((int)(c * ChunkElements), length), seed, nameHash, c);
        });
        return values;
    }

    private static long EncodedBytes(GgmlType type, long count) =>
        GgmlTypeInfo.TryToDType(type, out var dtype) ? count * dtype.ElementSize() : GgufRepack.EncodedSize(type, count);

    private static void Encode(GgmlType type, ReadOnlySpan<float> values, Span<byte> destination)
    {
        if (GgmlTypeInfo.TryToDType(type, out var dtype)) GgufTensorData.EncodeFloats(values, dtype, destination);
        else GgufRepack.Encode(type, values, destination);
    }

    private static void WriteValues(Stream stream, string name, long count, int seed, GgmlType type, bool isNorm)
    {
        ulong nameHash = Fnv1a(name);
        long chunks = (count + ChunkElements - 1) / ChunkElements;
        int window = Math.Max(1, Environment.ProcessorCount);
        var floats = new float[window][];
        var bytes = new byte[window][];
        for (int i = 0; i < window; i++)
        {
            floats[i] = ArrayPool<float>.Shared.Rent(ChunkElements);
            bytes[i] = ArrayPool<byte>.Shared.Rent(ChunkElements * 4);
        }
        try
        {
            for (long first = 0; first < chunks; first += window)
            {
                int inWindow = (int)Math.Min(window, chunks - first);
                Parallel.For(0, inWindow, w =>
                {
                    long c = first + w;
                    int length = (int)Math.Min(ChunkElements, count - c * ChunkElements);
                    var span = floats[w].AsSpan(0, length);
                    if (isNorm) span.Fill(1f);
                    else FillChunk(span, seed, nameHash, c);
                    Encode(type, span, bytes[w].AsSpan(0, (int)EncodedBytes(type, length)));
                });
                for (int w = 0; w < inWindow; w++)
                {
                    int length = (int)Math.Min(ChunkElements, count - (first + w) * ChunkElements);
                    stream.Write(bytes[w], 0, (int)EncodedBytes(type, length));
                }
            }
        }
        finally
        {
            for (int i = 0; i < window; i++)
            {
                ArrayPool<float>.Shared.Return(floats[i]);
                ArrayPool<byte>.Shared.Return(bytes[i]);
            }
        }
    }

    /// <summary>N(0, 0.02) values by Box-Muller over a SplitMix64 stream seeded per (seed, tensor, chunk).</summary>
    private static void FillChunk(Span<float> destination, int seed, ulong nameHash, long chunk)
    {
        ulong state = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ nameHash ^ ((ulong)chunk * 0xD1B54A32D192ED03UL);
        for (int i = 0; i < destination.Length; i += 2)
        {
            // 53-bit uniforms in (0, 1]; the log needs a non-zero argument.
            double u1 = ((SplitMix64(ref state) >> 11) + 1) * (1.0 / 9007199254740992.0);
            double u2 = (SplitMix64(ref state) >> 11) * (1.0 / 9007199254740992.0);
            double r = Math.Sqrt(-2.0 * Math.Log(u1)) * WeightStdDev;
            double theta = 2.0 * Math.PI * u2;
            destination[i] = (float)(r * Math.Cos(theta));
            if (i + 1 < destination.Length) destination[i + 1] = (float)(r * Math.Sin(theta));
        }
    }

    private static ulong SplitMix64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong Fnv1a(string s)
    {
        ulong h = 0xCBF29CE484222325UL;
        foreach (char c in s)
        {
            h ^= c;
            h *= 0x100000001B3UL;
        }
        return h;
    }

    private static SentencePieceModel BuildVocabulary(int vocabSize, TextTokenizer? tokenizer)
    {
        if (tokenizer is null) return BuiltInVocabulary.Create(vocabSize);
        var source = tokenizer.Model;
        if (tokenizer.VocabSize > vocabSize)
            throw new ArgumentException($"the tokenizer has {tokenizer.VocabSize} tokens, more than the config's vocab size {vocabSize}");
        var pieces = new List<SentencePiece>(vocabSize);
        for (int i = 0; i < tokenizer.VocabSize; i++) pieces.Add(tokenizer.PieceAt(i));
        for (int i = 0; pieces.Count < vocabSize; i++) pieces.Add(new SentencePiece($"<unused_{i}>", 0, PieceType.Unused));
        return new SentencePieceModel
        {
            Pieces = pieces, ModelType = source.ModelType, ByteFallback = source.ByteFallback,
            UnkId = source.UnkId, BosId = source.BosId, EosId = source.EosId, PadId = -1,
            NormalizerName = source.NormalizerName, AddDummyPrefix = source.AddDummyPrefix,
            RemoveExtraWhitespaces = source.RemoveExtraWhitespaces, EscapeWhitespaces = source.EscapeWhitespaces,
        };
    }

    /// <summary>tokenizer.ggml.* keys for a SentencePiece vocabulary, as llama.cpp writes them.</summary>
    internal static IEnumerable<KeyValuePair<string, GgufValue>> TokenizerMetadata(SentencePieceModel vocab)
    {
        yield return new("tokenizer.ggml.model", GgufValue.String("llama"));
        yield return new("tokenizer.ggml.tokens", GgufValue.Array(vocab.Pieces.Select(p => p.Piece).ToArray()));
        yield return new("tokenizer.ggml.scores", GgufValue.Array(vocab.Pieces.Select(p => p.Score).ToArray()));
        yield return new("tokenizer.ggml.token_type", GgufValue.Array(vocab.Pieces.Select(p => (int)p.Type).ToArray()));
        yield return new("tokenizer.ggml.bos_token_id", GgufValue.UInt32((uint)vocab.BosId));
        yield return new("tokenizer.ggml.eos_token_id", GgufValue.UInt32((uint)vocab.EosId));
        yield return new("tokenizer.ggml.unknown_token_id", GgufValue.UInt32((uint)vocab.UnkId));
        yield return new("tokenizer.ggml.add_bos_token", GgufValue.Bool(true));
        yield return new("tokenizer.ggml.add_eos_token", GgufValue.Bool(false));
    }
}
