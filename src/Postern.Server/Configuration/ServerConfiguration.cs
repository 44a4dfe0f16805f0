using System.Net;
using Postern.Server.Delivery;

namespace Postern.Server.Configuration;

/// <summary>
/// The configuration in force: the options and what is derived from them (the trusted networks,
/// each listener's mail authentication policy, the local domains and aliases, the DNS lists, the
/// way out for remote mail). Made whole at start and at each reload, never changed afterwards, and
/// published as one reference (<see cref="Smtp.ServerContext.Configuration"/>), so that nobody ever
/// sees half of a reload.
/// <para>
/// Who reads which: a session keeps one snapshot per transaction. It takes the snapshot in force
/// when a command arrives while no transaction is open, and keeps it from MAIL to the end of that
/// transaction (250 after the data, RSET, or the connection's end); so a transaction under way when
/// the configuration is reloaded finishes with the settings it began with, and the next one on the
/// same connection gets the new ones. The queue takes the snapshot in force at each delivery attempt.
/// </para>
/// <para>
/// What holds state an administrator would not want lost is not in here, and lives as long as the
/// server: rate counters (ClientLimits), AUTH failures and bans (AuthFailures), the triage cache,
/// open connection counts (ConnectionLimiter), the queue. Those read their limits from the snapshot
/// they are given or from the one in force. The DNS lists' cache of verdicts is in here: verdicts
/// made with other lists would be wrong, so it starts empty when Dnsbl changes (and only then).
/// </para>
/// </summary>
public sealed class ServerConfiguration
{
    private readonly Lazy<Limits.Dnsbl> _dnsbl;
    private readonly IReadOnlyList<ListenerOptions> _bound;
    private readonly EffectiveMailAuth[] _mailAuth;

    /// <param name="options">The options in force (after a reload: the new file's, with the running value of each setting that needs a restart).</param>
    /// <param name="generation">1 at start, one more at each reload that applied a change.</param>
    /// <param name="bound">The listeners as bound at start (one per entry of options.Listeners, in the same order).</param>
    /// <param name="dnsbl">Makes the DNS lists on first use.</param>
    /// <param name="remote">How remote mail leaves (by MX or through the smarthost); null in tests that deliver locally only.</param>
    public ServerConfiguration(PosternOptions options, long generation, IReadOnlyList<ListenerOptions> bound, Lazy<Limits.Dnsbl> dnsbl, IRemoteDelivery? remote)
    {
        Options = options;
        Generation = generation;
        _bound = bound;
        _dnsbl = dnsbl;
        Remote = remote;
        TrustedNetworks = options.Relay.TrustedNetworks.Select(n => IPNetwork.Parse(n)).ToList();
        LocalDomains = new HashSet<string>(options.Domains.Select(d => d.ToLowerInvariant()), StringComparer.Ordinal);
        Aliases = options.Aliases.ToDictionary(kv => kv.Key.ToLowerInvariant(), kv => kv.Value, StringComparer.OrdinalIgnoreCase);
        _mailAuth = options.Listeners.Select(options.MailAuth.For).ToArray();
    }

    public PosternOptions Options { get; }

    public long Generation { get; }

    /// <summary>Relay.TrustedNetworks, parsed.</summary>
    public IReadOnlyList<IPNetwork> TrustedNetworks { get; }

    /// <summary>Domains, lower case.</summary>
    public IReadOnlySet<string> LocalDomains { get; }

    /// <summary>Aliases, keys lower case, compared without case.</summary>
    public IReadOnlyDictionary<string, List<string>> Aliases { get; }

    /// <summary>The DNS block and allow lists with their cache of verdicts (made on first use).</summary>
    public Limits.Dnsbl Dnsbl => _dnsbl.Value;

    /// <summary>The maker of <see cref="Dnsbl"/>, handed on to the next snapshot when the lists did not change.</summary>
    public Lazy<Limits.Dnsbl> DnsblMaker => _dnsbl;

    public IRemoteDelivery? Remote { get; }

    /// <summary>The mail authentication policy in force on <paramref name="listener"/> (one of those bound at start): its own settings where it has them, MailAuth's otherwise.</summary>
    public EffectiveMailAuth MailAuthFor(ListenerOptions listener)
    {
        for (var i = 0; i < _bound.Count && i < _mailAuth.Length; i++)
        {
            if (ReferenceEquals(_bound[i], listener))
            {
                return _mailAuth[i];
            }
        }
        return Options.MailAuth.For(listener);
    }

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
