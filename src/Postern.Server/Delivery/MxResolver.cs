using System.Net;
using DnsClient;
using DnsClient.Protocol;

namespace Postern.Server.Delivery;

/// <summary>One host to try for a destination, with its addresses (IPv6 first, then IPv4).</summary>
public sealed record MxHost(string Name, int Preference, IReadOnlyList<IPAddress> Addresses);

/// <summary>An MX host without an address; <paramref name="Temporary"/> when DNS did not answer for it.</summary>
public sealed record SkippedHost(string Name, int Preference, bool Temporary);

/// <summary>Where mail for a domain goes (RFC 5321 §5.1), as a closed set of outcomes.</summary>
public abstract record MxResolution
{
    /// <summary>Hosts in the order to try them. <paramref name="Implicit"/>: no MX, the domain's own A/AAAA.</summary>
    public sealed record Hosts(IReadOnlyList<MxHost> List, bool Implicit) : MxResolution
    {
        /// <summary>MX hosts left out for want of an address (<c>Temporary</c>: DNS did not answer for it), for `diag deliver` to name.</summary>
        public IReadOnlyList<SkippedHost> Skipped { get; init; } = [];
    }

    /// <summary>RFC 7505: the domain says it takes no mail. Bounce at once with 556 5.1.10.</summary>
    public sealed record NullMx : MxResolution;

    /// <summary>The domain does not exist (NXDOMAIN), or has neither MX nor address: bounce (5.1.2).</summary>
    public sealed record NoSuchDomain(string Reason) : MxResolution;

    /// <summary>DNS did not answer properly (SERVFAIL, timeout): defer, never bounce.</summary>
    public sealed record Temporary(string Reason) : MxResolution;
}

/// <summary>
/// MX resolution with DnsClient against Dns.Servers (the system resolvers when empty): preference
/// order with equal preferences shuffled, A/AAAA when there is no MX, null MX (RFC 7505), and DNS
/// trouble kept apart from a definite "no such domain" so that it defers instead of bouncing.
/// </summary>
public sealed class MxResolver
{
    private readonly ILookupClient _dns;
    private readonly Random _random;
    private readonly Action<Postern.MailAuth.Dns.DnsFailure>? _failed;

    public MxResolver(IReadOnlyList<string> servers, TimeSpan? timeout = null, Random? random = null)
        : this(Postern.MailAuth.Dns.DnsClientMailAuthDns.CreateClient(servers.Select(Postern.MailAuth.Dns.DnsClientMailAuthDns.ParseServer).ToList(), timeout ?? TimeSpan.FromSeconds(5)), random)
    {
    }

    /// <summary>Over a shared client (the server's one, whose cache mail authentication uses too).</summary>
    /// <summary>Over a shared client (the server's one, whose cache mail authentication uses too); <paramref name="failed"/> hears of each DNS failure.</summary>
    public MxResolver(ILookupClient client, Random? random = null, Action<Postern.MailAuth.Dns.DnsFailure>? failed = null)
    {
        _dns = client;
        _random = random ?? Random.Shared;
        _failed = failed;
    }


    public async Task<MxResolution> ResolveAsync(string domain, CancellationToken cancellationToken = default)
    {
        var mx = await QueryAsync(domain, QueryType.MX, cancellationToken).ConfigureAwait(false);
        if (mx.Failure is { } failure)
        {
            return failure;
        }
        var records = mx.Response!.Answers.MxRecords().ToList();
        // RFC 7505 §3: a single MX with preference 0 and the root as exchange.
        if (records.Count == 1 && records[0].Exchange.Value is "." or "")
        {
            return new MxResolution.NullMx();
        }
        records = records.Where(r => r.Exchange.Value is not ("." or "")).ToList();
        if (records.Count == 0)
        {
            // RFC 5321 §5.1: no MX, so the domain itself is the implicit MX.
            var addresses = await AddressesAsync(domain, cancellationToken).ConfigureAwait(false);
            return addresses switch
            {
                { Failure: { } f } => f,
                { List.Count: 0 } => new MxResolution.NoSuchDomain($"{domain} has no MX and no address record"),
                { List: var list } => new MxResolution.Hosts([new MxHost(domain, 0, list)], Implicit: true),
            };
        }
        var hosts = new List<MxHost>();
        var skipped = new List<SkippedHost>();
        var temporary = (MxResolution.Temporary?)null;
        // Sort by preference; within one preference, a random order spreads the load (RFC 5321 §5.1).
        foreach (var group in records.GroupBy(r => r.Preference).OrderBy(g => g.Key))
        {
            foreach (var r in group.OrderBy(_ => _random.Next()))
            {
                var name = r.Exchange.Value.TrimEnd('.');
                var addresses = await AddressesAsync(name, cancellationToken).ConfigureAwait(false);
                if (addresses.Failure is MxResolution.Temporary t)
                {
                    temporary ??= t;
                    skipped.Add(new SkippedHost(name, r.Preference, Temporary: true));
                    continue;
                }
                if (addresses.List.Count > 0)
                {
                    hosts.Add(new MxHost(name, r.Preference, addresses.List));
                }
                else
                {
                    skipped.Add(new SkippedHost(name, r.Preference, Temporary: false));
                }
            }
        }
        if (hosts.Count == 0)
        {
            return (MxResolution?)temporary ?? new MxResolution.NoSuchDomain($"no MX host of {domain} has an address");
        }
        return new MxResolution.Hosts(hosts, Implicit: false) { Skipped = skipped };
    }

    /// <summary>The addresses of one named host (a smarthost): an IP literal as it is, else AAAA and A.</summary>
    public async Task<MxResolution> ResolveHostAsync(string host, CancellationToken cancellationToken = default)
    {
        if (IPAddress.TryParse(host.Trim('[', ']'), out var literal))
        {
            return new MxResolution.Hosts([new MxHost(host, 0, [literal])], Implicit: true);
        }
        var addresses = await AddressesAsync(host, cancellationToken).ConfigureAwait(false);
        return addresses switch
        {
            { Failure: { } f } => f,
            { List.Count: 0 } => new MxResolution.NoSuchDomain($"{host} has no address record"),
            { List: var list } => new MxResolution.Hosts([new MxHost(host, 0, list)], Implicit: true),
        };
    }

    private async Task<(IReadOnlyList<IPAddress> List, MxResolution? Failure)> AddressesAsync(string host, CancellationToken cancellationToken)
    {
        var list = new List<IPAddress>();
        foreach (var type in new[] { QueryType.AAAA, QueryType.A })
        {
            var result = await QueryAsync(host, type, cancellationToken).ConfigureAwait(false);
            if (result.Failure is MxResolution.Temporary)
            {
                return ([], result.Failure);
            }
            if (result.Response is { } response)
            {
                // CNAMEs are followed: the answer holds the chain and the final records.
                list.AddRange(type == QueryType.A
                    ? response.Answers.ARecords().Select(a => a.Address)
                    : response.Answers.AaaaRecords().Select(a => a.Address));
            }
        }
        return (list, null);
    }

    private async Task<(IDnsQueryResponse? Response, MxResolution? Failure)> QueryAsync(string name, QueryType type, CancellationToken cancellationToken)
    {
        IDnsQueryResponse response;
        try
        {
            response = await _dns.QueryAsync(name, type, QueryClass.IN, cancellationToken).ConfigureAwait(false);
        }
        catch (DnsResponseException e)
        {
            // DnsClient's message names the server it gave up on ("... on 192.0.2.53:53 timed out ...").
            _failed?.Invoke(new Postern.MailAuth.Dns.DnsFailure(string.Join(", ", _dns.NameServers), name, type.ToString(), e.Message));
            return (null, new MxResolution.Temporary($"DNS {type} {name}: {e.Message}"));
        }
        switch (response.Header.ResponseCode)
        {
            case DnsHeaderResponseCode.NoError:
                return (response, null);
            case DnsHeaderResponseCode.NotExistentDomain:
                return (null, new MxResolution.NoSuchDomain($"{name} does not exist (NXDOMAIN)"));
            case var code:
                // SERVFAIL, REFUSED...: say which server answered so, the one to look at.
                var server = response.NameServer?.ToString() ?? string.Join(", ", _dns.NameServers);
                _failed?.Invoke(new Postern.MailAuth.Dns.DnsFailure(server, name, type.ToString(), $"answered {code}"));
                return (null, new MxResolution.Temporary($"DNS {type} {name}: {server} answered {code}"));
        }
    }
}
