// Program.cs: entry point of the `sharpinfer` command line.
return SharpInfer.Cli.CliApp.Run(args, Console.Out, Console.Error);
