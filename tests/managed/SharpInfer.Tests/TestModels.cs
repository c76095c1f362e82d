// TestModels.cs: finds the shared test models (shared/models next to the repo, or
// SHARPINFER_MODELS_DIR) so tests that need them skip with a clear message when absent.
namespace SharpInfer.Tests;

internal static class TestModels
{
    public const string EnvironmentVariable = "SHARPINFER_MODELS_DIR";

    /// <summary>The folder holding Runtime.sln, found by walking up from the test binaries.</summary>
    public static string? RepoRoot { get; } = FindRepoRoot();

    /// <summary>SHARPINFER_MODELS_DIR if set, else &lt;repo&gt;/../shared/models.</summary>
    public static string ModelsDir { get; } =
        Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } fromEnv
            ? Path.GetFullPath(fromEnv)
            : Path.GetFullPath(Path.Combine(RepoRoot ?? AppContext.BaseDirectory, "..", "shared", "models"));

    public static string Stories260KDir => Path.Combine(ModelsDir, "stories260K");

    /// <summary>The stories260K folder; skips the calling [SkippableFact] when it is missing.</summary>
    public static string RequireStories260K()
    {
        string dir = Stories260KDir;
        bool present = File.Exists(Path.Combine(dir, "gguf", "stories260K-f32.gguf")) &&
                       File.Exists(Path.Combine(dir, "hf", "config.json")) &&
                       File.Exists(Path.Combine(dir, "reference", "tokenizer_cases.json"));
        Skip.IfNot(present, $"stories260K not found at {dir}: set {EnvironmentVariable}");
        return dir;
    }

    public static string Stories260KGguf => Path.Combine(Stories260KDir, "gguf", "stories260K-f32.gguf");
    public static string Stories260KUpstreamGguf => Path.Combine(Stories260KDir, "upstream", "stories260K.gguf");
    public static string Stories260KHf => Path.Combine(Stories260KDir, "hf");

    private static string? FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Runtime.sln"))) return dir.FullName;
        return null;
    }
}
