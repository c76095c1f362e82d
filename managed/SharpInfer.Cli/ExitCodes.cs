// ExitCodes.cs: what `sharpinfer` returns, so scripts can tell a bad input from a broken install.
namespace SharpInfer.Cli;

public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>Unexpected failure (a bug).</summary>
    public const int InternalError = 1;
    /// <summary>Bad command line, model file, prompt or parameter.</summary>
    public const int BadInput = 2;
    /// <summary>The native library or a backend could not be used.</summary>
    public const int RuntimeUnavailable = 3;
}
