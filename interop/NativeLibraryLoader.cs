// NativeLibraryLoader.cs: finds and loads libsharpinfer, checks its ABI version, and turns a
// failed load into a message that says where it looked and how to build the library.
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SharpInfer.Interop;

public static unsafe class NativeLibraryLoader
{
    /// <summary>Full path of a libsharpinfer to load, overriding every other location.</summary>
    public const string LibraryPathVariable = "SHARPINFER_NATIVE_LIB";
    /// <summary>A folder holding libsharpinfer, searched before the defaults.</summary>
    public const string LibraryDirVariable = "SHARPINFER_NATIVE_DIR";

    private static readonly object Gate = new();
    private static nint _handle;
    private static string? _loadedPath;
    private static NativeLibraryException? _failure;

    /// <summary>Path of the loaded library (after <see cref="EnsureLoaded"/>).</summary>
    public static string? LoadedPath => _loadedPath;

    // A module initializer is the one hook guaranteed to run before any [LibraryImport]
    // of this assembly binds, which is exactly when the resolver must be in place.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RegisterResolver() =>
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraryLoader).Assembly, Resolve);

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != NativeMethods.LibraryName) return nint.Zero;
        Load();
        return _handle;
    }

    /// <summary>Loads the library and checks its ABI version; throws NativeLibraryException
    /// with an actionable message when it cannot.</summary>
    public static void EnsureLoaded()
    {
        Load();
        if (_failure is not null) throw _failure;
    }

    private static void Load()
    {
        lock (Gate)
        {
            if (_handle != nint.Zero || _failure is not null) return;
            var tried = new List<string>();
            foreach (string candidate in CandidatePaths())
            {
                if (!File.Exists(candidate)) { tried.Add($"{candidate} (absent)"); continue; }
                if (!NativeLibrary.TryLoad(candidate, out nint handle)) { tried.Add($"{candidate} (present but failed to load: missing dependency or wrong architecture?)"); continue; }
                if (!NativeLibrary.TryGetExport(handle, "si_abi_version", out nint export))
                {
                    tried.Add($"{candidate} (not a libsharpinfer: no si_abi_version export)");
                    continue;
                }
                int version = 0;
                ((delegate* unmanaged<int*, SiStatus>)export)(&version);
                if (version != NativeMethods.AbiVersion)
                {
                    _failure = new NativeLibraryException(
                        $"{candidate} has ABI version {version}, but this SharpInfer expects {NativeMethods.AbiVersion}. " +
                        "Rebuild the native library (scripts/build) so both come from the same commit.");
                    return;
                }
                _handle = handle;
                _loadedPath = candidate;
                return;
            }
            _failure = new NativeLibraryException(
                $"Could not load the native library {FileName}. Looked in:\n  " + string.Join("\n  ", tried) +
                $"\nBuild it with scripts/build (CMake: cmake --preset cpu-release && cmake --build --preset cpu-release), " +
                $"or point {LibraryDirVariable} at the folder holding {FileName}.");
        }
    }

    private static string FileName =>
        OperatingSystem.IsWindows() ? "sharpinfer.dll" : OperatingSystem.IsMacOS() ? "libsharpinfer.dylib" : "libsharpinfer.so";

    private static IEnumerable<string> CandidatePaths()
    {
        if (Environment.GetEnvironmentVariable(LibraryPathVariable) is { Length: > 0 } path)
        {
            yield return path;
            yield break;
        }
        if (Environment.GetEnvironmentVariable(LibraryDirVariable) is { Length: > 0 } dir)
            yield return Path.Combine(dir, FileName);
        // Next to the application (NativeAOT publish, packaged apps).
        yield return Path.Combine(AppContext.BaseDirectory, FileName);
        // A development checkout: build/native/lib is where the CMake build stages the library.
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "Runtime.sln")))
            {
                yield return Path.Combine(folder.FullName, "build", "native", "lib", FileName);
                yield break;
            }
        }
    }
}
