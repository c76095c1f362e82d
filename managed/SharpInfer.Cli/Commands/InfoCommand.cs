// InfoCommand.cs: `sharpinfer info`: which native library is loaded, its backends, the CPU
// features it detected, and whether a CUDA device is usable.
using System.CommandLine;
using SharpInfer.Interop;
using SharpInfer.Interop.Cuda;

namespace SharpInfer.Cli.Commands;

internal static class InfoCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("info", "Show the native library, compiled backends, CPU features and CUDA devices.");
        command.SetAction(parse =>
        {
            try
            {
                stdout.WriteLine($"native library  {NativeContext.BuildInfo}");
                stdout.WriteLine($"loaded from     {NativeLibraryLoader.LoadedPath}");
                var cuda = CudaDriver.Probe();
                stdout.WriteLine(cuda.IsAvailable
                    ? $"cuda            {cuda.DeviceCount} device(s), driver {cuda.DriverVersion}"
                    : $"cuda            {cuda.Reason}");
                return ExitCodes.Ok;
            }
            catch (Exception e)
            {
                return CliApp.Report(e, stderr);
            }
        });
        return command;
    }
}
