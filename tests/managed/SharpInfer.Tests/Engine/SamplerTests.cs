// SamplerTests.cs: greedy, seeded sampling and each truncation rule of the Sampler.
using SharpInfer.Engine;

namespace SharpInfer.Tests.Engine;

public class SamplerTests
{
    [Fact]
    public void Greedy_PicksLargest_TiesToLowestIndex_IgnoresNaN()
    {
        var sampler = new Sampler(SamplingParams.Greedy);
        Assert.Equal(2, sampler.Sample(new float[] { 1, 2, 5, 5, float.NaN }, []));
        Assert.Equal(1, Sampler.Argmax(new float[] { float.NaN, -1, -2 }));
    }

    [Fact]
    public void SameSeed_SameTokens_DifferentSeed_DifferentStream()
    {
        float[] logits = Enumerable.Range(0, 50).Select(i => (float)Math.Sin(i) * 2).ToArray();
        int[] Draw(ulong seed)
        {
            var s = new Sampler(new SamplingParams { Temperature = 1.0f, Seed = seed });
            return Enumerable.Range(0, 64).Select(_ => s.Sample((float[])logits.Clone(), [])).ToArray();
        }
        Assert.Equal(Draw(7), Draw(7));
        Assert.NotEqual(Draw(7), Draw(8));
    }

    [Fact]
    public void TopK_LimitsCandidates()
    {
        float[] logits = [0, 1, 2, 3, 4, 5, 6, 7];
        var s = new Sampler(new SamplingParams { Temperature = 5.0f, TopK = 2, Seed = 1 });
        var seen = Enumerable.Range(0, 500).Select(_ => s.Sample((float[])logits.Clone(), [])).ToHashSet();
        Assert.Equal(new HashSet<int> { 6, 7 }, seen);
    }

    [Fact]
    public void TopP_KeepsSmallestNucleus()
    {
        // Probabilities ~ [0.64, 0.24, 0.09, 0.03]: top-p 0.8 keeps the first two.
        float[] logits = [3, 2, 1, 0];
        var s = new Sampler(new SamplingParams { Temperature = 1.0f, TopP = 0.8f, Seed = 3 });
        var seen = Enumerable.Range(0, 500).Select(_ => s.Sample((float[])logits.Clone(), [])).ToHashSet();
        Assert.Equal(new HashSet<int> { 0, 1 }, seen);
    }

    [Fact]
    public void MinP_DropsUnlikelyTokens()
    {
        float[] logits = [3, 2.9f, 0, -1];  // p1/p0 = 0.90, p2/p0 = 0.05
        var s = new Sampler(new SamplingParams { Temperature = 1.0f, MinP = 0.5f, Seed = 5 });
        var seen = Enumerable.Range(0, 500).Select(_ => s.Sample((float[])logits.Clone(), [])).ToHashSet();
        Assert.Equal(new HashSet<int> { 0, 1 }, seen);
    }

    [Fact]
    public void RepetitionPenalty_CanChangeGreedyChoice()
    {
        var s = new Sampler(new SamplingParams { RepetitionPenalty = 2.0f });
        Assert.Equal(1, s.Sample(new float[] { 4, 3, -1 }, [0]));  // 4/2 = 2 < 3
    }

    [Theory]
    [InlineData(-1f, 0, 1f, 0f, 1f)]
    [InlineData(0f, -1, 1f, 0f, 1f)]
    [InlineData(0f, 0, 0f, 0f, 1f)]
    [InlineData(0f, 0, 1.5f, 0f, 1f)]
    [InlineData(0f, 0, 1f, 2f, 1f)]
    [InlineData(0f, 0, 1f, 0f, 0f)]
    public void InvalidParameters_AreRejected(float t, int k, float p, float minP, float rep)
    {
        var parameters = new SamplingParams { Temperature = t, TopK = k, TopP = p, MinP = minP, RepetitionPenalty = rep };
        Assert.Throws<ArgumentException>(() => new Sampler(parameters));
    }

    [Fact]
    public void FrequencyAndPresencePenalties_CountOnlyGeneratedTokens()
    {
        // history = prompt [0, 0] + output [0, 1]: only the output counts.
        int[] history = [0, 0, 0, 1];
        var frequency = new Sampler(new SamplingParams { FrequencyPenalty = 1.5f });
        float[] a = [5, 4.5f, 4];
        Assert.Equal(2, frequency.Sample(a, history, promptLength: 2, out _));   // 5-1.5=3.5, 4.5-1.5=3, 4
        Assert.Equal([3.5f, 3f, 4f], a);
        var presence = new Sampler(new SamplingParams { PresencePenalty = 0.8f });
        float[] b = [5, 4.5f, 4.5f];
        presence.Sample(b, history, promptLength: 2, out _);
        Assert.Equal([4.2f, 3.7f, 4.5f], b);
        // The two-argument overload treats the whole history as output.
        float[] c = [5, 4.5f, 4];
        new Sampler(new SamplingParams { FrequencyPenalty = 1 }).Sample(c, history);
        Assert.Equal([2f, 3.5f, 4f], c);
    }

    [Fact]
    public void LogitBias_ShiftsAndBansTokens()
    {
        var s = new Sampler(new SamplingParams { LogitBias = new Dictionary<int, float> { [0] = float.NegativeInfinity, [2] = 3 } });
        Assert.Equal(2, s.Sample(new float[] { 9, 1, 0 }, []));
        Assert.Throws<ArgumentException>(() => new Sampler(new SamplingParams { LogitBias = new Dictionary<int, float> { [-1] = 1 } }));
        Assert.Throws<ArgumentException>(() => new Sampler(new SamplingParams { LogitBias = new Dictionary<int, float> { [1] = float.NaN } }));
    }

    [Fact]
    public void Logprobs_AreOfTheRawDistribution_WithTopAlternatives()
    {
        float[] logits = [1, 3, 2, 3];
        double logSum = Math.Log(logits.Sum(v => Math.Exp(v)));
        var s = new Sampler(new SamplingParams { TopLogprobs = 3, RepetitionPenalty = 10, Logprobs = true });
        int token = s.Sample((float[])logits.Clone(), [1], 0, out var lp);
        Assert.Equal(3, token);  // the penalty pushes id 1 down; logprobs still describe the raw logits
        Assert.NotNull(lp);
        Assert.Equal(3, lp.TokenId);
        Assert.Equal(3 - logSum, lp.Logprob, 5);
        Assert.Equal([1, 3, 2], lp.TopAlternatives.Select(a => a.TokenId));  // ties to the lower id
        Assert.Equal(3 - logSum, lp.TopAlternatives[0].Logprob, 5);
        Assert.Equal(2 - logSum, lp.TopAlternatives[2].Logprob, 5);

        new Sampler(SamplingParams.Greedy).Sample(new float[] { 1, 2 }, [], 0, out var none);
        Assert.Null(none);
        Assert.Throws<ArgumentException>(() => new Sampler(new SamplingParams { TopLogprobs = 21 }));
        Assert.Throws<ArgumentException>(() => new Sampler(new SamplingParams { PresencePenalty = -2.5f }));
    }
}
