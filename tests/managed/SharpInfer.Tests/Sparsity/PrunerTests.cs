// PrunerTests.cs: which weights pruning keeps. 2:4 keeps the 2 best scores of every group of 4;
// unstructured keeps the top (1 - S) of every row; Wanda's activation norms change the choice where
// they differ across input channels (and not where they are equal).
using SharpInfer.Sparsity;

namespace SharpInfer.Tests.Sparsity;

public sealed class PrunerTests
{
    [Theory]
    [InlineData(64)]
    [InlineData(30)]  // a last group of 2
    [InlineData(31)]  // a last group of 3
    public void TwoFour_KeepsTheTwoLargestOfEveryGroup(int columns)
    {
        const int rows = 9;
        var original = SparsePackingTests.RandomWeights(rows, columns, seed: columns);
        var w = (float[])original.Clone();
        Pruner.Prune(w, rows, columns, SparsityPattern.TwoFour, 0.5);
        for (int r = 0; r < rows; r++)
        {
            for (int start = 0; start < columns; start += 4)
            {
                int size = Math.Min(4, columns - start);
                var expectedKept = Enumerable.Range(start, size).OrderByDescending(c => MathF.Abs(original[r * columns + c])).Take(2).ToHashSet();
                for (int c = start; c < start + size; c++)
                    Assert.Equal(expectedKept.Contains(c) ? original[r * columns + c] : 0f, w[r * columns + c]);
            }
        }
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.7)]
    [InlineData(0.9)]
    public void Unstructured_KeepsTheTopOneMinusSOfEachRow(double sparsity)
    {
        const int rows = 6, columns = 100;
        var original = SparsePackingTests.RandomWeights(rows, columns, seed: 11);
        var w = (float[])original.Clone();
        Pruner.Prune(w, rows, columns, SparsityPattern.Unstructured, sparsity);
        int keep = columns - (int)Math.Round(sparsity * columns);
        for (int r = 0; r < rows; r++)
        {
            var row = original.AsSpan(r * columns, columns).ToArray();
            var expectedKept = Enumerable.Range(0, columns).OrderByDescending(c => MathF.Abs(row[c])).Take(keep).ToHashSet();
            for (int c = 0; c < columns; c++)
                Assert.Equal(expectedKept.Contains(c) ? row[c] : 0f, w[r * columns + c]);
            Assert.Equal(keep, w.AsSpan(r * columns, columns).ToArray().Count(v => v != 0));
        }
    }

    [Fact]
    public void Wanda_DiffersFromMagnitude_WhenChannelNormsDiffer()
    {
        // One row of 4: magnitude keeps the two large weights (columns 0, 1); channel 2 and 3 carry
        // activations 100x louder, so Wanda keeps those.
        float[] weights = [1.0f, 0.9f, 0.1f, 0.2f];
        float[] norms = [1, 1, 100, 100];
        var magnitude = (float[])weights.Clone();
        Pruner.Prune(magnitude, 1, 4, SparsityPattern.TwoFour, 0.5);
        var wanda = (float[])weights.Clone();
        Pruner.Prune(wanda, 1, 4, SparsityPattern.TwoFour, 0.5, norms);
        Assert.Equal([1.0f, 0.9f, 0, 0], magnitude);
        Assert.Equal([0, 0, 0.1f, 0.2f], wanda);

        // Over a random matrix the kept sets differ too, and with equal norms they do not.
        const int rows = 16, columns = 64;
        var w = SparsePackingTests.RandomWeights(rows, columns, seed: 5);
        var rng = new Random(9);
        float[] loud = Enumerable.Range(0, columns).Select(_ => (float)Math.Exp(rng.NextDouble() * 4)).ToArray();
        var byMagnitude = (float[])w.Clone();
        var byWanda = (float[])w.Clone();
        var byFlatWanda = (float[])w.Clone();
        Pruner.Prune(byMagnitude, rows, columns, SparsityPattern.Unstructured, 0.5);
        Pruner.Prune(byWanda, rows, columns, SparsityPattern.Unstructured, 0.5, loud);
        Pruner.Prune(byFlatWanda, rows, columns, SparsityPattern.Unstructured, 0.5, Enumerable.Repeat(3f, columns).ToArray());
        Assert.NotEqual(byMagnitude, byWanda);
        Assert.Equal(byMagnitude, byFlatWanda);
        // Wanda's choice is the top half of |w| * norm.
        for (int r = 0; r < rows; r++)
        {
            var kept = Enumerable.Range(0, columns).OrderByDescending(c => MathF.Abs(w[r * columns + c]) * loud[c]).Take(columns / 2).ToHashSet();
            for (int c = 0; c < columns; c++) Assert.Equal(kept.Contains(c), byWanda[r * columns + c] != 0);
        }
    }

    [Fact]
    public void BadArguments_AreRejected()
    {
        var w = new float[8];
        Assert.Throws<ArgumentOutOfRangeException>(() => Pruner.Prune(w, 2, 4, SparsityPattern.Unstructured, 1.0));
        Assert.Throws<ArgumentException>(() => Pruner.Prune(w, 2, 4, SparsityPattern.TwoFour, 0.5, new float[3]));
        Assert.Throws<ArgumentException>(() => Pruner.Prune(w, 3, 4, SparsityPattern.TwoFour, 0.5));
        Assert.Throws<ArgumentException>(() => new PruneOptions { Pattern = SparsityPattern.TwoFour, Sparsity = 0.7 }.Validate());
        Assert.Throws<ArgumentException>(() => new PruneOptions { Method = PruneMethod.Wanda }.Validate());
    }
}
