using System.Net;
using System.Net.Security;
using Microsoft.Extensions.Logging;
using Postern.Server.Accounts;
using Postern.Server.Configuration;
using Postern.Server.Queue;

namespace Postern.Server.Smtp;

/// <summary>What every session shares: the configuration in force, the spool, accounts and the clock.</summary>
public sealed class ServerContext
{
    private Configuration.ServerConfiguration _configuration = null!;

    /// <summary>The configuration in force: replaced whole by a reload (<see cref="Publish"/>), never changed in place.</summary>
    public required Configuration.ServerConfiguration Configuration
    {
        get => Volatile.Read(ref _configuration);
        init => _configuration = value;
    }

    /// <summary>Puts a new configuration in force: the next transaction of every session, and every later delivery attempt, uses it.</summary>
    public void Publish(Configuration.ServerConfiguration configuration) => Volatile.Write(ref _configuration, configuration);

    /// <summary>The options in force now (a session uses its own snapshot: SmtpSession.Options).</summary>
    public PosternOptions Options => Configuration.Options;

    public required Spool Spool { get; init; }
    public required AddressBook AddressBook { get; init; }
    public required AuthFailures AuthFailures { get; init; }
    public required SslServerAuthenticationOptions Tls { get; init; }
    public required ILogger Logger { get; init; }
    public required TimeProvider Time { get; init; }
    /// <summary>Called once a message is committed, so delivery starts at once (without reading the envelope back).</summary>
    public required Action<SpooledMessage> Committed { get; init; }
    /// <summary>Rates per client address and per user (made on first use); the counters outlive every reload.</summary>
    public Limits.ClientLimits ClientLimits => LazyInitializer.EnsureInitialized(ref _clientLimits, () => new Limits.ClientLimits(Time));
    private Limits.ClientLimits? _clientLimits;

    /// <summary>Clients that passed connection triage lately (made on first use); kept across reloads.</summary>
    public Limits.TriageCache TriageCache => LazyInitializer.EnsureInitialized(ref _triageCache, () => new Limits.TriageCache(Time));
    private Limits.TriageCache? _triageCache;

    // The mail-authentication services are made by the composition root (PosternServer) at start,
    // never on first use: a failure while making one would fail the first message and, cached,
    // every later one (issue 12). Each is stateless per message and serves all sessions at once.

    /// <summary>The SPF checker (asking Dns.Servers).</summary>
    public required Postern.MailAuth.Spf.SpfEvaluator Spf { get; init; }

    /// <summary>The DKIM verifier.</summary>
    public required Postern.MailAuth.Dkim.DkimVerifier Dkim { get; init; }

    /// <summary>The ARC chain verifier.</summary>
    public required Postern.MailAuth.Arc.ArcChainVerifier Arc { get; init; }

    /// <summary>The DMARC evaluator (with the shipped Public Suffix List, loaded at start).</summary>
    public required Postern.MailAuth.Dmarc.DmarcEvaluator Dmarc { get; init; }

    /// <summary>DNS for mail authentication: the server's resolver, shared with the MX lookups.</summary>
    public required Postern.MailAuth.Dns.IMailAuthDns MailAuthDns { get; init; }

    /// <summary>Cancelled when the server starts draining (SIGTERM).</summary>
    public CancellationToken ShuttingDown { get; init; }

    public bool IsTrusted(IPAddress ip) => Configuration.IsTrusted(ip);
}
