using System.Globalization;
using Postern.Diagnostics;
using Postern.MailAuth.Dns;
using Postern.Server.Configuration;
using Postern.Server.Delivery;

using Postern.Invocation;

namespace Postern.Cli;

/// <summary>
/// `postern diag CHECK ...` (SPEC §8): runs one check and prints each step (what it tried, what it
/// saw, and for a problem the likely cause and the fix), or with --json the report as data. Exit 1
/// when a step failed, 2 for a usage error, 0 otherwise. The checks are the <see cref="IDiagVerb"/>
/// classes of this assembly. A configuration is used when there is one (for Dns.Servers, this
/// server's names and keys), but none is needed: `diag` is for any server, this one or another.
/// </summary>
public static class DiagCommand
{
    private static readonly string[] CommonOptions = ["--json", "--timeout", "--dns"];

    /// <summary>Every check, by name.</summary>
    public static IReadOnlyDictionary<string, IDiagVerb> Verbs { get; } = typeof(DiagCommand).Assembly.GetTypes()
        .Where(t => typeof(IDiagVerb).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
        .Select(t => (IDiagVerb)Activator.CreateInstance(t)!)
        .ToDictionary(v => v.Name, StringComparer.Ordinal);

    /// <summary>The usage lines of every check, in a fixed order.</summary>
    public static string Usage =>
        string.Join("\n", Verbs.Values.OrderBy(v => Order(v.Name)).ThenBy(v => v.Name, StringComparer.Ordinal).Select(v => $"  {v.Usage,-58} {v.Summary}")) +
        "\n  (each also takes --json, --timeout SECONDS (default 5) and --dns IP[:PORT])";

    public static async Task<int> RunAsync(Arguments a, TextWriter stdout, TextWriter stderr, TextReader stdin, TimeProvider? time = null)
    {
        var name = a.Positional.ElementAtOrDefault(0);
        if (name is null || !Verbs.TryGetValue(name, out var verb))
        {
            throw new UsageException($"diag {(name is null ? "needs a check" : $"has no check '{name}'")}:\n{Usage}");
        }
        a.Allow([.. CommonOptions, .. verb.Options]);
        var rest = a.Shift();
        var target = verb.Target(rest);
        var timeout = TimeSpan.FromSeconds(5);
        if (a.Value("--timeout") is { } t)
        {
            if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) || seconds is <= 0 or > 600)
            {
                throw new UsageException("--timeout: seconds, more than 0 and at most 600");
            }
            timeout = TimeSpan.FromSeconds(seconds);
        }
        var (options, hasConfiguration) = LoadOptionsIfAny(a);
        var servers = a.Value("--dns") is { } dns ? [Server(dns)] : options.Dns.Servers.Select(Postern.MailAuth.Dns.DnsClientMailAuthDns.ParseServer).ToList();
        var report = new DiagReport(verb.Name, target);
        var terminal = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected;
        var console = a.Json ? null : new DiagConsole(stdout, terminal);
        var ctx = new DiagContext
        {
            Options = options,
            HasConfiguration = hasConfiguration,
            Dns = new DnsClientMailAuthDns(servers, timeout),
            DnsServers = servers,
            DnsDescription = servers.Count == 0 ? "the system resolvers" : string.Join(", ", servers.Select(s => s.ToString())),
            Timeout = timeout,
            Time = time ?? TimeProvider.System,
            Stdin = stdin,
            Report = report,
            Progress = (IDiagProgress?)console ?? SilentProgress.Instance,
        };
        if (console is null)
        {
            await GuardedAsync(verb, ctx, rest);
            stdout.WriteLine(report.ToJsonText());
        }
        else
        {
            await console.RunAsync($"postern diag {verb.Name} {target}", () => GuardedAsync(verb, ctx, rest));
            console.Summary(report);
        }
        return report.Ok ? ExitCode.Ok : ExitCode.Problem;
    }

    /// <summary>
    /// Runs the check; something it did not foresee becomes a failed step with the exception's
    /// words (and the report so far still prints), never a stack trace.
    /// </summary>
    private static async Task GuardedAsync(IDiagVerb verb, DiagContext ctx, Arguments rest)
    {
        try
        {
            await verb.RunAsync(ctx, rest, CancellationToken.None);
        }
        catch (Exception e) when (e is not UsageException)
        {
            ctx.Add(new DiagStep("check.failed", $"diag {verb.Name} itself", DiagStatus.Fail, "the steps above",
                $"{e.GetType().Name}: {e.Message}", "check_failed",
                "the check met something it does not handle, so what comes after it was not checked",
                "run it again; if it fails the same way, report it with this output (it is a bug in postern diag)"));
        }
    }

    private static (PosternOptions, bool) LoadOptionsIfAny(Arguments a)
    {
        if (a.Config is null && !a.Dev && ConfigurationLoader.FindConfigFile(null) is null)
        {
            return (new PosternOptions(), false);
        }
        return (CommandLine.LoadOptions(a).Options, true);
    }

    private static DnsClient.NameServer Server(string s)
    {
        try
        {
            return Postern.MailAuth.Dns.DnsClientMailAuthDns.ParseServer(s);
        }
        catch (FormatException)
        {
            throw new UsageException($"--dns {s}: an IP address, optionally with :PORT");
        }
    }

    private static int Order(string name) => Array.IndexOf(["port", "dns", "dnsbl", "auth", "relay", "deliver", "self"], name) is var i and >= 0 ? i : 99;
}
