using Postern.Cli;
using Postern.Server.Storage;

// What Postern makes is private unless made otherwise on purpose (the spool holds other people's mail).
if (!OperatingSystem.IsWindows())
{
    UnixUser.RestrictUmask();
    DataDirectory.MayChangeUser = true; // run as root, a verb becomes the data directory's user
}

return await CommandLine.RunAsync(args, Console.Out, Console.Error, Console.In);
