using Postern.Cli;

return await CommandLine.RunAsync(args, Console.Out, Console.Error, Console.In);
