using System.Net;
using DnsClient;
using DnsClient.Protocol;

namespace Postern.MailAuth.Dns;

/// <summary><see cref="IMailAuthDns"/> over DnsClient, against the given servers (the system resolvers when none).</summary>
public sealed class DnsClientMailAuthDns : IMailAuthDns
{
    private readonly ILookupClient _dns;

    public DnsClientMailAuthDns(IReadOnlyList<NameServer> servers, TimeSpan timeout)
        : this(CreateClient(servers, timeout))
    {
    }

    /// <summary>Over a client made by <see cref="CreateClient"/>, shared with the MX lookups (one cache).</summary>
    public DnsClientMailAuthDns(ILookupClient client) => _dns = client;

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
            return DnsAnswer<T>.TempError;
        }
        return response.Header.ResponseCode switch
        {
            DnsHeaderResponseCode.NoError => new DnsAnswer<T>(DnsStatus.Ok, records(response).ToList()),
            DnsHeaderResponseCode.NotExistentDomain => DnsAnswer<T>.NxDomain,
            _ => DnsAnswer<T>.TempError,
        };
    }
}
