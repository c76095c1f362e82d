// StopStringMatcher.cs: streams text while watching for stop strings. Text that might be
// the start of a stop string is held back until it is known not to be one, so a stop
// string never leaks into the output even when it spans several tokens.
namespace SharpInfer.Engine;

public sealed class StopStringMatcher(IReadOnlyList<string> stopStrings)
{
    private readonly System.Text.StringBuilder _pending = new();

    /// <summary>True once a stop string was seen; later input is ignored.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds decoded text; returns the part that is safe to emit now.</summary>
    public string Push(string text)
    {
        if (Stopped) return "";
        _pending.Append(text);
        if (stopStrings.Count == 0) return Flush();

        string pending = _pending.ToString();
        int cut = -1;
        foreach (string stop in stopStrings)
        {
            int at = pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0)
        {
            Stopped = true;
            _pending.Clear();
            return pending[..cut];
        }
        // Hold back the longest suffix that is a proper prefix of some stop string.
        int hold = 0;
        foreach (string stop in stopStrings)
            for (int len = Math.Min(stop.Length - 1, pending.Length); len > hold; len--)
                if (pending.AsSpan(pending.Length - len).SequenceEqual(stop.AsSpan(0, len))) { hold = len; break; }
        _pending.Remove(0, pending.Length - hold);
        return pending[..^hold];
    }

    /// <summary>Emits whatever is held back (at the end of generation).</summary>
    public string Flush()
    {
        if (Stopped) return "";
        string rest = _pending.ToString();
        _pending.Clear();
        return rest;
    }
}
