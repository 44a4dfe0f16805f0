using Postern.Server.Configuration;
using Postern.Server.Storage;

namespace Postern.Cli;

/// <summary>Exit codes of SPEC §1.</summary>
public static class ExitCode
{
    public const int Ok = 0;
    public const int Problem = 1;
    public const int Usage = 2;
}

/// <summary>Arguments after the verb: flags with values, switches, and positional words.</summary>
public sealed class Arguments
{
    private static readonly HashSet<string> Switches = ["--dev", "--json", "--password-stdin", "--force", "--insecure", "--write"];
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _switches = new(StringComparer.Ordinal);

    public List<string> Positional { get; } = [];

    public static Arguments Parse(IEnumerable<string> args)
    {
        var a = new Arguments();
        var list = args.ToList();
        for (var i = 0; i < list.Count; i++)
        {
            var arg = list[i];
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                var eq = arg.IndexOf('=');
                if (eq > 0)
                {
                    a._values[arg[..eq]] = arg[(eq + 1)..];
                }
                else if (Switches.Contains(arg))
                {
                    a._switches.Add(arg);
                }
                else if (i + 1 < list.Count)
                {
                    a._values[arg] = list[++i];
                }
                else
                {
                    throw new UsageException($"{arg} needs a value");
                }
            }
            else
            {
                a.Positional.Add(arg);
            }
        }
        return a;
    }

    public string? Value(string name) => _values.GetValueOrDefault(name);

    /// <summary>The same options without the first positional word (the sub-command's own arguments).</summary>
    public Arguments Shift()
    {
        var a = new Arguments();
        foreach (var (k, v) in _values)
        {
            a._values[k] = v;
        }
        a._switches.UnionWith(_switches);
        a.Positional.AddRange(Positional.Skip(1));
        return a;
    }

    public bool Has(string name) => _switches.Contains(name);

    public bool Dev => Has("--dev");
    public bool Json => Has("--json");
    public string? Config => Value("--config");

    /// <summary>Fails on flags this verb does not know, so a typo is never silently ignored.</summary>
    public void Allow(params string[] names)
    {
        foreach (var k in _values.Keys.Concat(_switches))
        {
            if (!names.Contains(k) && k is not "--config" and not "--dev")
            {
                throw new UsageException($"unknown option {k}");
            }
        }
    }
}

public sealed class UsageException(string message) : Exception(message);

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
