using Postern.Invocation;
using Postern.MailAuth.Dns;
using Postern.Server.Configuration;

namespace Postern.Diagnostics;

/// <summary>
/// One `postern diag` sub-command (SPEC §8). Each lives in a file of its own and is found by
/// `postern diag` (Cli.DiagCommand) at start, so adding one touches nothing else.
/// </summary>
public interface IDiagVerb
{
    /// <summary>The word after `diag`: port, dns, dnsbl, auth, relay, deliver, self.</summary>
    string Name { get; }

    /// <summary>One usage line, e.g. <c>diag port HOST [--ports 25,587,465]</c>.</summary>
    string Usage { get; }

    /// <summary>What it is for, in a few words, for the usage text.</summary>
    string Summary { get; }

    /// <summary>The options it takes besides the common ones (--json, --config, --dev, --timeout, --dns).</summary>
    IReadOnlyList<string> Options { get; }

    /// <summary>The target named in the report (a host, domain, address or IP), from the positional words; throws <see cref="UsageException"/> when they are wrong.</summary>
    string Target(Arguments args);

    /// <summary>Runs the check, adding each step to <paramref name="ctx"/> as it is found.</summary>
    Task RunAsync(DiagContext ctx, Arguments args, CancellationToken cancellationToken);
}

/// <summary>Shows steps as they come, and what is being waited for (a spinner on a terminal).</summary>
public interface IDiagProgress
{
    void Show(DiagStep step);

    /// <summary>Marks a wait on the network; disposing ends it.</summary>
    IDisposable Waiting(string what);
}

/// <summary>What a check works with: the configuration (when there is one), DNS, the clock, the report.</summary>
public sealed class DiagContext
{
    /// <summary>The server's configuration: the one found or given, else the built-in defaults.</summary>
    public required PosternOptions Options { get; init; }

    /// <summary>True when <see cref="Options"/> came from a file (or --dev), so that "this server" means something.</summary>
    public required bool HasConfiguration { get; init; }

    /// <summary>The resolver: --dns when given, else the configuration's Dns.Servers, else the system's.</summary>
    public required IMailAuthDns Dns { get; init; }

    /// <summary>The servers <see cref="Dns"/> asks (empty: the system's), for a check that needs raw answers.</summary>
    public IReadOnlyList<DnsClient.NameServer> DnsServers { get; init; } = [];

    /// <summary>The servers <see cref="Dns"/> asks, for the words of a step ("asked 127.0.0.53").</summary>
    public required string DnsDescription { get; init; }

    /// <summary>For each network wait (connect, a reply, a DNS answer): --timeout, default 5 seconds.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(5);

    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Where a password given with --password-stdin is read from.</summary>
    public required TextReader Stdin { get; init; }

    public required DiagReport Report { get; init; }

    public required IDiagProgress Progress { get; init; }

    /// <summary>Records a step and shows it.</summary>
    public void Add(DiagStep step)
    {
        Report.Add(step);
        Progress.Show(step);
    }

    /// <summary>Awaits <paramref name="work"/> with <paramref name="what"/> on the spinner.</summary>
    public async Task<T> WaitAsync<T>(string what, Task<T> work)
    {
        using (Progress.Waiting(what))
        {
            return await work.ConfigureAwait(false);
        }
    }

    /// <summary>Awaits <paramref name="work"/> with <paramref name="what"/> on the spinner.</summary>
    public async Task WaitAsync(string what, Task work)
    {
        using (Progress.Waiting(what))
        {
            await work.ConfigureAwait(false);
        }
    }
}
