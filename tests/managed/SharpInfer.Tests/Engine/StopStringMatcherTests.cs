// StopStringMatcherTests.cs: stop strings never leak, even across token boundaries.
using SharpInfer.Engine;

namespace SharpInfer.Tests.Engine;

public class StopStringMatcherTests
{
    [Fact]
    public void StopAcrossPieces_IsCutAndHeldTextIsNotEmitted()
    {
        var m = new StopStringMatcher(["END"]);
        string output = m.Push("hello E") + m.Push("N") + m.Push("D and more");
        Assert.True(m.Stopped);
        Assert.Equal("hello ", output);
        Assert.Equal("", m.Push("later"));
    }

    [Fact]
    public void FalseStart_IsReleased()
    {
        var m = new StopStringMatcher(["END"]);
        Assert.Equal("a", m.Push("aE"));
        Assert.Equal("EX", m.Push("X"));
        Assert.False(m.Stopped);
        Assert.Equal("E", m.Push("E") + m.Flush());
    }

    [Fact]
    public void EarliestOfSeveralStops_Wins()
    {
        var m = new StopStringMatcher(["world", "lo"]);
        Assert.Equal("hel", m.Push("hello world"));
    }

    [Fact]
    public void NoStops_PassThrough()
    {
        var m = new StopStringMatcher([]);
        Assert.Equal("abc", m.Push("abc"));
    }
}
