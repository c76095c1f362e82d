// MachineInfo.cs: what the figures came from: CPU, cores, memory, runtimes and libraries, the
// llama.cpp library variant LLamaSharp loaded, and this machine's limits when perf/machine-limits ran.
using System.Runtime.InteropServices;
using System.Text.Json;
using LLama.Native;

namespace SharpInfer.PeerComparison;

internal sealed record MachineInfo(string Cpu, int Cores, long MemoryMiB, string Os, string DotNet, string SharpInferNative, JsonElement? Limits, string? LimitsError)
{
    public static MachineInfo Collect(string? limitsPath)
    {
        string cpu = "unknown";
        long memory = 0;
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? cpu;
            string? total = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:"));
            if (total is not null) memory = long.Parse(total.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
        }
        catch (IOException) { }

        string native;
        try { native = SharpInfer.Interop.NativeContext.BuildInfo; }
        catch (Exception e) { native = $"unavailable: {e.Message}"; }

        JsonElement? limits = null;
        string? limitsError = null;
        if (limitsPath is not null)
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllText(limitsPath));
                limits = doc.RootElement.Clone();
            }
            catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
            {
                limitsError = $"{limitsPath}: {e.Message}";
            }
        }
        return new MachineInfo(cpu, Environment.ProcessorCount, memory, RuntimeInformation.OSDescription,
            RuntimeInformation.FrameworkDescription, native, limits, limitsError);
    }

    /// <summary>Measured memory read bandwidth with all threads (GB/s), when the limits hold it.</summary>
    public double? BandwidthAllThreads =>
        Limits is JsonElement l && l.TryGetProperty("memory_read_gb_per_s", out var bw) &&
        bw.TryGetProperty("all_threads", out var all) && all.ValueKind == JsonValueKind.Number ? all.GetDouble() : null;
}

/// <summary>Collects llama.cpp's and LLamaSharp's log lines.</summary>
internal sealed class LlamaLog(bool verbose)
{
    private readonly List<string> _lines = [];

    public void Write(LLamaLogLevel level, string message)
    {
        lock (_lines) _lines.Add(message.TrimEnd());
        if (verbose || level is LLamaLogLevel.Warning or LLamaLogLevel.Error)
            Console.Error.Write($"[llama.cpp {level}] {message}");
    }

    /// <summary>The libllama file LLamaSharp loaded (it picks the AVX level at run time).</summary>
    public string? LoadedLibrary
    {
        get
        {
            lock (_lines)
                return _lines.Where(l => l.StartsWith("Successfully loaded '") && l.Contains("libllama"))
                    .Select(l => l["Successfully loaded '".Length..].TrimEnd('\'')).LastOrDefault();
        }
    }

    /// <summary>llama.cpp's log lines that say how it runs (weight loading, repacking, flash attention), once each.</summary>
    public IReadOnlyList<string> Notes
    {
        get
        {
            string[] keys = ["load_mode =", "model buffer size", "flash_attn", "Flash Attention", "kv_unified", "n_threads"];
            lock (_lines)
                return _lines.Where(l => keys.Any(l.Contains)).Distinct().Take(40).ToList();
        }
    }

    public static string SystemInfo()
    {
        try { return LlamaCppRunner.SystemInfo().Trim(); }
        catch (Exception e) { return $"unavailable: {e.GetType().Name}: {e.Message}"; }
    }
}
