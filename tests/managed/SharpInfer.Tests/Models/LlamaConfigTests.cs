// LlamaConfigTests.cs: Validate rejects impossible configs with a message naming the problem, and
// equality compares the EOS list by value.
using SharpInfer.Models;

namespace SharpInfer.Tests.Models;

public sealed class LlamaConfigTests
{
    private static readonly LlamaConfig Good = SyntheticModel.Tiny;

    public static TheoryData<string, string> BadConfigs => new()
    {
        { "zero vocab", "vocab size must be positive" },
        { "zero hidden", "hidden size must be positive" },
        { "zero layers", "layer count must be positive" },
        { "zero kv heads", "KV head count must be positive" },
        { "heads not dividing", "attention head count 4 is not a multiple of the KV head count 3" },
        { "odd head dim", "head dim must be even" },
        { "zero context", "context length must be positive" },
        { "negative theta", "rope theta must be positive" },
        { "nan eps", "RMSNorm epsilon must be positive" },
        { "bos outside", "BOS id 512 is outside the vocabulary" },
        { "no eos", "no EOS token id" },
        { "eos outside", "EOS id -1 is outside the vocabulary" },
        { "unknown arch", "unsupported architecture 'gemma' (supported: llama, mistral, qwen2)" },
    };

    private static LlamaConfig Make(string which) => which switch
    {
        "zero vocab" => Good with { VocabSize = 0 },
        "zero hidden" => Good with { HiddenSize = 0 },
        "zero layers" => Good with { NumLayers = 0 },
        "zero kv heads" => Good with { NumKvHeads = 0 },
        "heads not dividing" => Good with { NumKvHeads = 3 },
        "odd head dim" => Good with { HeadDim = 15 },
        "zero context" => Good with { MaxContext = 0 },
        "negative theta" => Good with { RopeTheta = -1 },
        "nan eps" => Good with { RmsNormEps = float.NaN },
        "bos outside" => Good with { BosTokenId = 512 },
        "no eos" => Good with { EosTokenIds = [] },
        "eos outside" => Good with { EosTokenIds = [2, -1] },
        "unknown arch" => Good with { Architecture = "gemma" },
        _ => throw new ArgumentException(which),
    };

    [Theory]
    [MemberData(nameof(BadConfigs))]
    public void Validate_RejectsImpossibleValues(string which, string phrase)
    {
        var e = Assert.Throws<ModelFormatException>(() => Make(which).Validate("/models/x.gguf"));
        Assert.Contains(phrase, e.Message);
        Assert.StartsWith("/models/x.gguf: ", e.Message);
    }

    [Fact]
    public void Validate_AcceptsPresets()
    {
        Good.Validate();
        SyntheticModel.TinyLlama1B.Validate();
        Assert.Equal(8, SyntheticModel.TinyLlama1B.GqaGroupSize);
    }

    [Fact]
    public void Equality_ComparesEosByValue()
    {
        Assert.Equal(Good with { EosTokenIds = [2, 5] }, Good with { EosTokenIds = [2, 5] });
        Assert.NotEqual(Good with { EosTokenIds = [2, 5] }, Good with { EosTokenIds = [2] });
        Assert.Contains("EosTokenIds = [2, 5]", (Good with { EosTokenIds = [2, 5] }).ToString());
    }

    [Fact]
    public void EnumValues_MatchTheNativeAbi()
    {
        Assert.Equal(0, (int)TensorDType.F32);
        Assert.Equal(1, (int)TensorDType.F16);
        Assert.Equal(2, (int)TensorDType.BF16);
        Assert.Equal(0, (int)RopeLayout.AdjacentPairs);
        Assert.Equal(1, (int)RopeLayout.RotateHalf);
    }
}
