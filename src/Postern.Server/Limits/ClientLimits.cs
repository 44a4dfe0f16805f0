using System.Net;
using Postern.Server.Configuration;

namespace Postern.Server.Limits;

/// <summary>
/// Rates per client (an IPv4 address or an IPv6 /64, see <see cref="ClientKey"/>) and per
/// authenticated user: connections per minute, messages and recipients per hour. Clients in
/// Relay.TrustedNetworks are not rate-limited by address (Postfix exempts $mynetworks the same
/// way); authenticated users are always counted, so a stolen password cannot send without bound.
/// System.Threading.RateLimiting was considered: its limiters read the system clock (no
/// TimeProvider, so no injected time in tests) and its partitioned limiter keeps a limiter per key
/// without a bound, which attacker-chosen keys must not have; hence <see cref="RateCounters{TKey}"/>.
/// The counters live as long as the server; the limits and the trusted networks come with each call
/// from the caller's configuration snapshot, so a reload changes the limits and keeps the counts.
/// </summary>
public sealed class ClientLimits(TimeProvider time)
{
    private readonly RateCounters<IPAddress> _connections = new(time, TimeSpan.FromMinutes(1));
    private readonly RateCounters<IPAddress> _messagesByIp = new(time, TimeSpan.FromHours(1));
    private readonly RateCounters<IPAddress> _recipientsByIp = new(time, TimeSpan.FromHours(1));
    private readonly RateCounters<string> _messagesByUser = new(time, TimeSpan.FromHours(1));
    private readonly RateCounters<string> _recipientsByUser = new(time, TimeSpan.FromHours(1));

    /// <summary>Counts a new connection; false when the address is over Limits.MaxConnectionsPerIpPerMinute.</summary>
    public bool TryConnect(ServerConfiguration c, IPAddress ip) =>
        c.IsTrusted(ip) || _connections.TryAdd(ClientKey.For(ip), c.Options.Limits.MaxConnectionsPerIpPerMinute);

    /// <summary>Counts a message (at MAIL); false when the user or the address is over its hourly limit.</summary>
    public bool TryMessage(ServerConfiguration c, IPAddress ip, string? user) => user is not null
        ? _messagesByUser.TryAdd(user.ToLowerInvariant(), c.Options.Limits.MaxMessagesPerHourPerUser)
        : c.IsTrusted(ip) || _messagesByIp.TryAdd(ClientKey.For(ip), c.Options.Limits.MaxMessagesPerHourPerIp);

    /// <summary>Counts a recipient (at RCPT); false when the user or the address is over its hourly limit.</summary>
    public bool TryRecipient(ServerConfiguration c, IPAddress ip, string? user) => user is not null
        ? _recipientsByUser.TryAdd(user.ToLowerInvariant(), c.Options.Limits.MaxRecipientsPerHourPerUser)
        : c.IsTrusted(ip) || _recipientsByIp.TryAdd(ClientKey.For(ip), c.Options.Limits.MaxRecipientsPerHourPerIp);

    /// <summary>
    /// The tarpit: how long to hold back the reply to a session's <paramref name="errors"/>-th error.
    /// Nothing before Limits.TarpitAfterErrors; then Limits.TarpitDelay, twice that, three times...
    /// at most ten times.
    /// </summary>
    public static TimeSpan ErrorDelay(LimitsOptions options, int errors) => options.TarpitAfterErrors <= 0 || errors < options.TarpitAfterErrors
        ? TimeSpan.Zero
        : options.TarpitDelay * Math.Min(errors - options.TarpitAfterErrors + 1, 10);
}
