using System.Net;

namespace Postern.MailAuth.Dns;

/// <summary>How a DNS question ended (RFC 7208 §2.6 and RFC 7489 §6.6.3 tell these apart).</summary>
public enum DnsStatus
{
    /// <summary>An answer; an empty record list means the name exists without records of the type (NODATA).</summary>
    Ok,
    /// <summary>The name does not exist (NXDOMAIN).</summary>
    NxDomain,
    /// <summary>No usable answer: timeout, SERVFAIL, a malformed reply. Callers report temperror.</summary>
    TempError,
}

/// <summary>One DNS answer: its status and its records (empty unless <see cref="DnsStatus.Ok"/>).</summary>
public sealed record DnsAnswer<T>(DnsStatus Status, IReadOnlyList<T> Records)
{
    public static DnsAnswer<T> Of(params T[] records) => new(DnsStatus.Ok, records);
    public static readonly DnsAnswer<T> NxDomain = new(DnsStatus.NxDomain, []);
    public static readonly DnsAnswer<T> TempError = new(DnsStatus.TempError, []);
}

/// <summary>An MX record.</summary>
public sealed record MxRecord(int Preference, string Exchange);

/// <summary>
/// The DNS questions mail authentication asks. The server answers them with DnsClient against
/// Dns.Servers (<see cref="DnsClientMailAuthDns"/>); the conformance tests answer them from the
/// suites' own zone data, and the integration tests from a real DNS server on loopback.
/// Names are given without the trailing dot; TXT records come back with their character-strings
/// joined without separator (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
/// </summary>
public interface IMailAuthDns
{
    Task<DnsAnswer<string>> TxtAsync(string name, CancellationToken cancellationToken = default);

    Task<DnsAnswer<IPAddress>> AAsync(string name, CancellationToken cancellationToken = default);

    Task<DnsAnswer<IPAddress>> AaaaAsync(string name, CancellationToken cancellationToken = default);

    Task<DnsAnswer<MxRecord>> MxAsync(string name, CancellationToken cancellationToken = default);

    /// <summary>The PTR names of an address (the reverse name is built by the implementation).</summary>
    Task<DnsAnswer<string>> PtrAsync(IPAddress address, CancellationToken cancellationToken = default);
}
