using Postern.Server.Configuration;
using Postern.Server.Storage;

using Postern.Invocation;

namespace Postern.Cli;

/// <summary>The `postern` command line (SPEC §1): one executable, verbs.</summary>
public static class CommandLine
{
    public const string Usage = """
        usage: postern VERB [options]

          serve [--config FILE] [--dev]          run the server until SIGTERM/SIGINT (SIGHUP: reload)
          user add|del|list|passwd [ADDRESS] [--password-stdin]
          queue list|show ID|summary [--json]   what waits, why, and where to (whether or not the server runs)
          queue flush|retry ID|hold ID|release ID|bounce ID|delete ID [--json]
          bans list|release KEY [--json]        AUTH brute-force bans (ip:ADDR, net:PREFIX/64, user:ADDRESS)
          config check [--config FILE] [--dev] [--json]
          reload [--config FILE] [--json]       the running server reads its configuration again (as SIGHUP)
          dkim keygen --domain D [--selector S] [--algorithm rsa|ed25519]   signing key in DATA/dkim/D.S.key; prints its TXT record
          send --server HOST[:PORT] [--tls starttls|implicit|none] [--user U --password-stdin]
               --from A --to B [--subject S] [--body-file F]
          sendmail [-t] [-i] [-f SENDER] [-F NAME] [-bs] [recipient ...]   mail from local programs (cron, mailx); sysexits codes
          import aliases FILE [--domain D] [--format aliases|virtual] [--write]   Postfix aliases(5)/virtual(5) to Aliases
          diag port|dns|dnsbl|auth|relay|deliver|self ... [--json]   why mail does not flow, and the fix
               (`postern diag` lists each check's options)

        Every verb takes --config FILE (default ./postern.json, then /etc/postern/postern.json)
        and --dev (the embedded development configuration).
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, TextReader stdin)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            (args.Length == 0 ? stderr : stdout).WriteLine(Usage);
            return args.Length == 0 ? ExitCode.Usage : ExitCode.Ok;
        }
        if (args[0] == "sendmail")
        {
            // sendmail's own option syntax (-t, -fADDR, -oi) and exit codes (sysexits), for the programs that call it.
            return SendmailCommand.Run(args[1..], stderr, Console.OpenStandardInput(), Console.OpenStandardOutput());
        }
        try
        {
            var rest = Arguments.Parse(args.Skip(1));
            return args[0] switch
            {
                "serve" => await ServeCommand.RunAsync(rest, stdout, stderr),
                "user" => UserCommand.Run(rest, stdout, stderr, stdin),
                "queue" => QueueCommand.Run(rest, stdout, stderr),
                "bans" => BansCommand.Run(rest, stdout, stderr),
                "config" => ConfigCommand.Run(rest, stdout, stderr),
                "reload" => ReloadCommand.Run(rest, stdout, stderr),
                "dkim" => DkimCommand.Run(rest, stdout, stderr),
                "send" => await SendCommand.RunAsync(rest, stdout, stderr, stdin),
                "diag" => await DiagCommand.RunAsync(rest, stdout, stderr, stdin),
                "import" => ImportCommand.Run(rest, stdout, stderr),
                _ => throw new UsageException($"unknown verb '{args[0]}'"),
            };
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"postern: {e.Message}");
            return ExitCode.Usage;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            // A file or folder this user may not use (the data directory is the server user's): one line, never a stack trace.
            stderr.WriteLine($"postern: {e.Message} (run it as root or as the server's user)");
            return ExitCode.Usage;
        }
        catch (ConfigurationException e)
        {
            // One line per problem, each naming its key.
            foreach (var line in e.Message.Split(Environment.NewLine))
            {
                stderr.WriteLine($"postern: configuration error: {line}");
            }
            return ExitCode.Usage;
        }
    }

    /// <summary>
    /// Loads the configuration every verb shares (so they all find the same data directory). With
    /// <paramref name="actAsDataOwner"/> (verbs that write in the data directory), a process run as
    /// root becomes the directory's user (DataDirectory.ActAsOwner), so no root-owned file is left
    /// for the server to trip on.
    /// </summary>
    public static (PosternOptions Options, string? File) LoadOptions(Arguments a, bool actAsDataOwner = false)
    {
        var file = ConfigurationLoader.FindConfigFile(a.Config);
        if (file is null && !a.Dev)
        {
            throw new ConfigurationException("no configuration file (give --config FILE, create ./postern.json or /etc/postern/postern.json, or use --dev)");
        }
        var options = ConfigurationLoader.Load(a.Dev && a.Config is null ? null : file, a.Dev);
        if (actAsDataOwner)
        {
            DataDirectory.ActAsOwner(options);
        }
        return (options, a.Dev && a.Config is null ? null : file);
    }
}
