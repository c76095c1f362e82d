// DefaultModel.cs: the model `generate`/`bench` use when --model is not given: stories260K
// from ../shared/models when present, else a small random-weight model SharpInfer writes once
// into ~/.cache/sharpinfer (so a fresh machine always has something that runs).
using SharpInfer.Models;

namespace SharpInfer.Cli.Commands;

internal static class DefaultModel
{
    public const string ModelsDirVariable = "SHARPINFER_MODELS_DIR";

    public static string Resolve(TextWriter log)
    {
        foreach (string dir in CandidateModelDirs())
        {
            string path = Path.Combine(dir, "stories260K", "gguf", "stories260K-f32.gguf");
            if (File.Exists(path)) return path;
        }
        string cache = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "sharpinfer");
        string generated = Path.Combine(cache, "synthetic-tiny-f32.gguf");
        if (!File.Exists(generated))
        {
            Directory.CreateDirectory(cache);
            string temp = generated + ".tmp";
            SyntheticModel.Write(temp, SyntheticModel.Tiny, TensorDType.F32, seed: 1);
            File.Move(temp, generated, overwrite: true);
        }
        log.WriteLine($"note: stories260K was not found (../shared/models); using a small random-weight model " +
                      $"SharpInfer generated at {generated}. Its text is gibberish; pass --model for a real one.");
        return generated;
    }

    private static IEnumerable<string> CandidateModelDirs()
    {
        if (Environment.GetEnvironmentVariable(ModelsDirVariable) is { Length: > 0 } fromEnv) yield return fromEnv;
        // From a checkout: <repo>/../shared/models; also relative to the working directory.
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Runtime.sln")))
            {
                yield return Path.Combine(dir.FullName, "..", "shared", "models");
                break;
            }
        }
        yield return Path.Combine(Environment.CurrentDirectory, "..", "shared", "models");
        yield return Path.Combine(Environment.CurrentDirectory, "shared", "models");
    }
}
