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
}
