using System.Net;
using System.Net.Security;
using Microsoft.Extensions.Logging;
using Postern.Server.Accounts;
using Postern.Server.Configuration;
using Postern.Server.Queue;

namespace Postern.Server.Smtp;

/// <summary>What every session shares: configuration, the spool, accounts and the clock.</summary>
public sealed class ServerContext
{
    public required PosternOptions Options { get; init; }
    public required Spool Spool { get; init; }
    public required AddressBook AddressBook { get; init; }
    public required AuthFailures AuthFailures { get; init; }
    public required SslServerAuthenticationOptions Tls { get; init; }
    public required ILogger Logger { get; init; }
    public required TimeProvider Time { get; init; }
    public required IReadOnlyList<IPNetwork> TrustedNetworks { get; init; }
    /// <summary>Called once a message is committed, so delivery starts at once (without reading the envelope back).</summary>
    public required Action<SpooledMessage> Committed { get; init; }
    /// <summary>Rates per client address and per user (made on first use from Options and TrustedNetworks).</summary>
    public Limits.ClientLimits ClientLimits => LazyInitializer.EnsureInitialized(ref _clientLimits, () => new Limits.ClientLimits(Options.Limits, Time, IsTrusted));
    private Limits.ClientLimits? _clientLimits;

    /// <summary>Clients that passed connection triage lately (made on first use).</summary>
    public Limits.TriageCache TriageCache => LazyInitializer.EnsureInitialized(ref _triageCache, () => new Limits.TriageCache(Time, Options.Triage.CacheTime));
    private Limits.TriageCache? _triageCache;

    /// <summary>The DNS block and allow lists, with their cache of verdicts (made on first use, from Options.Dnsbl and Options.Dns).</summary>
    public Limits.Dnsbl Dnsbl => LazyInitializer.EnsureInitialized(ref _dnsbl, () => new Limits.Dnsbl(Options.Dnsbl, Options.Dns, Logger, Time));
    private Limits.Dnsbl? _dnsbl;

    /// <summary>The SPF checker (made on first use, asking Dns.Servers).</summary>
    public Postern.MailAuth.Spf.SpfEvaluator Spf => LazyInitializer.EnsureInitialized(ref _spf, () => new Postern.MailAuth.Spf.SpfEvaluator(MailAuthDns, Options.Hostname, Time));
    private Postern.MailAuth.Spf.SpfEvaluator? _spf;

    /// <summary>The DKIM verifier (made on first use).</summary>
    public Postern.MailAuth.Dkim.DkimVerifier Dkim => LazyInitializer.EnsureInitialized(ref _dkim, () => new Postern.MailAuth.Dkim.DkimVerifier(MailAuthDns, Time));
    private Postern.MailAuth.Dkim.DkimVerifier? _dkim;

    /// <summary>The ARC chain verifier (made on first use).</summary>
    public Postern.MailAuth.Arc.ArcChainVerifier Arc => LazyInitializer.EnsureInitialized(ref _arc, () => new Postern.MailAuth.Arc.ArcChainVerifier(MailAuthDns));
    private Postern.MailAuth.Arc.ArcChainVerifier? _arc;

    /// <summary>The DMARC evaluator (made on first use, with the shipped Public Suffix List).</summary>
    public Postern.MailAuth.Dmarc.DmarcEvaluator Dmarc => LazyInitializer.EnsureInitialized(ref _dmarc, () => new Postern.MailAuth.Dmarc.DmarcEvaluator(MailAuthDns));
    private Postern.MailAuth.Dmarc.DmarcEvaluator? _dmarc;

    /// <summary>DNS for mail authentication: the server's resolver, shared with the MX lookups.</summary>
    public required Postern.MailAuth.Dns.IMailAuthDns MailAuthDns { get; init; }

    /// <summary>Cancelled when the server starts draining (SIGTERM).</summary>
    public CancellationToken ShuttingDown { get; init; }

    public bool IsTrusted(IPAddress ip)
    {
        if (ip.IsIPv4MappedToIPv6)
        {
            ip = ip.MapToIPv4();
        }
        foreach (var n in TrustedNetworks)
        {
            if (n.Contains(ip))
            {
                return true;
            }
        }
        return false;
    }
}
