// Program.cs: sharpinfer-peer: SharpInfer vs llama.cpp (through LLamaSharp) on the same GGUF
// files; prints a table of medians with our/their ratios and writes perf/results/peer-<date>.json.
using LLama.Native;
using SharpInfer.PeerComparison;

Options options;
try
{
    options = Options.Parse(args);
}
catch (HelpRequested)
{
    Console.WriteLine(Options.Usage);
    return 0;
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"sharpinfer-peer: {e.Message}");
    return 2;
}

string root = RepoRoot();
if (options.Models.Count == 0)
{
    foreach (string candidate in new[]
    {
        Path.Combine(root, "..", "shared", "models", "stories260K", "gguf", "stories260K-f32.gguf"),
        Path.Combine(root, "build", "models", "tinyllama-1.1b-f16.gguf"),
        Path.Combine(root, "build", "models", "tinyllama-1.1b-q8_0.gguf"),
        Path.Combine(root, "build", "models", "tinyllama-1.1b-q4_0.gguf"),
    })
        if (File.Exists(candidate)) options.Models.Add(Path.GetFullPath(candidate));
    if (options.Models.Count == 0)
    {
        Console.Error.WriteLine("sharpinfer-peer: no model: pass --model PATH (or make build/models/tinyllama-1.1b-f16.gguf with `sharpinfer make-model`)");
        return 2;
    }
}

// llama.cpp's log: kept for the report (which library variant loaded), shown with --verbose,
// warnings and errors always go to stderr.
var llamaLog = new LlamaLog(options.Verbose);
NativeLibraryConfig.All.WithLogCallback(llamaLog.Write);

var machine = MachineInfo.Collect(options.MachineLimits);
var results = new List<ModelResult>();
int exitCode = 0;
foreach (string model in options.Models)
{
    try
    {
        results.Add(Comparison.Run(model, options, Console.Error));
    }
    catch (Exception e)
    {
        Console.Error.WriteLine($"sharpinfer-peer: {model}: {Comparison.Describe(e)}");
        results.Add(new ModelResult { Path = Path.GetFullPath(model), Errors = { $"not measured: {Comparison.Describe(e)}" } });
        exitCode = 1;
    }
}

string outPath = options.Out ?? Path.Combine(root, "perf", "results", $"peer-{DateTime.UtcNow:yyyyMMdd}.json");
Report.PrintTable(Console.Out, machine, llamaLog, options, results);
Report.WriteJson(outPath, machine, llamaLog, options, results);
Console.Out.WriteLine($"sharpinfer-peer: wrote {outPath}");
return exitCode;

static string RepoRoot()
{
    foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Runtime.sln"))) return dir.FullName;
    return Directory.GetCurrentDirectory();
}
