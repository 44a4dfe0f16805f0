using System.Net;
using DnsClient;
using DnsClient.Protocol;

namespace Postern.MailAuth.Dns;

/// <summary>
/// A DNS question that got no usable answer: the server that failed (IP:port, or the servers asked
/// when none answered), the question, and why (a timeout, SERVFAIL, REFUSED, a network error).
/// </summary>
public sealed record DnsFailure(string Server, string Name, string Type, string Reason);

/// <summary><see cref="IMailAuthDns"/> over DnsClient, against the given servers (the system resolvers when none).</summary>
public sealed class DnsClientMailAuthDns : IMailAuthDns
{
    private readonly ILookupClient _dns;
    private readonly Action<DnsFailure>? _failed;

    public DnsClientMailAuthDns(IReadOnlyList<NameServer> servers, TimeSpan timeout)
        : this(CreateClient(servers, timeout))
    {
    }

    /// <summary>
    /// Over a client made by <see cref="CreateClient"/>, shared with the MX lookups (one cache).
    /// <paramref name="failed"/> hears of every temporary error (this project has no logger: the
    /// server logs it), so that an administrator learns which DNS server let a check down.
    /// </summary>
    public DnsClientMailAuthDns(ILookupClient client, Action<DnsFailure>? failed = null)
    {
        _dns = client;
        _failed = failed;
    }

    /// <summary>"IP" or "IP:port" / "[IPv6]:port" (port 53 by default).</summary>
    public static NameServer ParseServer(string s) =>
        IPEndPoint.TryParse(s, out var ep) && (s.Contains("]:", StringComparison.Ordinal) || (s.Count(c => c == ':') == 1))
            ? new NameServer(ep.Address, ep.Port == 0 ? 53 : ep.Port)
            : new NameServer(IPAddress.Parse(s.Trim('[', ']')), 53);

    /// <summary>
    /// The resolver settings of delivery and mail authentication: answers kept for their TTL
    /// (failures not), DNS errors as answers rather than exceptions, one retry after
    /// <paramref name="timeout"/>; the system resolvers when <paramref name="servers"/> is empty.
    /// </summary>
    public static ILookupClient CreateClient(IReadOnlyList<NameServer> servers, TimeSpan timeout)
    {
        var options = servers.Count == 0 ? new LookupClientOptions() : new LookupClientOptions(servers.ToArray());
        options.UseCache = true;
        options.CacheFailedResults = false;
        options.ThrowDnsErrors = false;
        options.ContinueOnDnsError = false;
        options.Timeout = timeout;
        options.Retries = 1;
        return new LookupClient(options);
    }

    public Task<DnsAnswer<string>> TxtAsync(string name, CancellationToken cancellationToken = default) =>
        QueryAsync(name, QueryType.TXT, r => r.Answers.TxtRecords().Select(t => string.Concat(t.Text)), cancellationToken);

    public Task<DnsAnswer<IPAddress>> AAsync(string name, CancellationToken cancellationToken = default) =>
        QueryAsync(name, QueryType.A, r => r.Answers.ARecords().Select(a => a.Address), cancellationToken);

    public Task<DnsAnswer<IPAddress>> AaaaAsync(string name, CancellationToken cancellationToken = default) =>
        QueryAsync(name, QueryType.AAAA, r => r.Answers.AaaaRecords().Select(a => a.Address), cancellationToken);

    public Task<DnsAnswer<MxRecord>> MxAsync(string name, CancellationToken cancellationToken = default) =>
        QueryAsync(name, QueryType.MX, r => r.Answers.MxRecords().Select(m => new MxRecord(m.Preference, m.Exchange.Value.TrimEnd('.'))), cancellationToken);

    public Task<DnsAnswer<string>> PtrAsync(IPAddress address, CancellationToken cancellationToken = default) =>
        QueryAsync(address.GetArpaName(), QueryType.PTR, r => r.Answers.PtrRecords().Select(p => p.PtrDomainName.Value.TrimEnd('.')), cancellationToken);

    private async Task<DnsAnswer<T>> QueryAsync<T>(string name, QueryType type, Func<IDnsQueryResponse, IEnumerable<T>> records, CancellationToken cancellationToken)
    {
        IDnsQueryResponse response;
        try
        {
            response = await _dns.QueryAsync(name, type, QueryClass.IN, cancellationToken).ConfigureAwait(false);
        }
        catch (ArgumentException)
        {
            // Not a name DNS can carry (an empty or 64-octet label, 256 octets in all): nothing can exist there.
            return DnsAnswer<T>.NxDomain;
        }
        catch (Exception e) when (e is DnsResponseException or System.Net.Sockets.SocketException or IOException or TimeoutException
            || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // No answer, whatever the reason: a temporary error, never a crash of the check.
            // DnsClient's own message names the server it gave up on ("... on 192.0.2.53:53 timed out").
            _failed?.Invoke(new DnsFailure(string.Join(", ", _dns.NameServers), name, type.ToString(), e.Message));
            return DnsAnswer<T>.TempError;
        }
        switch (response.Header.ResponseCode)
        {
            case DnsHeaderResponseCode.NoError:
                return new DnsAnswer<T>(DnsStatus.Ok, records(response).ToList());
            case DnsHeaderResponseCode.NotExistentDomain:
                return DnsAnswer<T>.NxDomain;
            case var code:
                _failed?.Invoke(new DnsFailure(response.NameServer?.ToString() ?? string.Join(", ", _dns.NameServers), name, type.ToString(), $"answered {code}"));
                return DnsAnswer<T>.TempError;
        }
    }
}
