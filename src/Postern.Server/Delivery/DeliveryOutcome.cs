using System.Net;
using Postern.Server.Queue;

namespace Postern.Server.Delivery;

/// <summary>A recipient's outcome (STYLE principle 8).</summary>
public abstract record DeliveryOutcome
{
    /// <summary>The server that gave this outcome; null for local delivery or when no server was reached.</summary>
    public Hop? Via { get; init; }

    /// <param name="Detail">Where it went (mailbox file, or host and TLS).</param>
    /// <param name="PeerHandlesDsn">The receiving server offered DSN and was given NOTIFY, so success reports are its job.</param>
    public sealed record Delivered(string Detail, bool PeerHandlesDsn = false) : DeliveryOutcome;
    /// <param name="Reason">The reply or the trouble, in words.</param>
    public sealed record Deferred(string Reason) : DeliveryOutcome
    {
        /// <summary>When the queue tries it again: set by the queue from <see cref="RetrySchedule"/> (transports leave it null); null on a recipient also means "as soon as the message is taken".</summary>
        public DateTimeOffset? RetryAt { get; init; }

        /// <summary>
        /// The server refused a new connection at its greeting (421): it takes no more connections
        /// from us at once. Worth another try as soon as one of ours to it closes, not after a backoff.
        /// </summary>
        public bool Crowded { get; init; }
    }
    public sealed record Bounced(string Reply) : DeliveryOutcome;
}

/// <summary>
/// One server as the logs name it: <c>host[ip]:port</c>, and the TLS version used (null: none). The
/// address is null for an LMTP server on a unix socket (Host is its path) or named by host name.
/// </summary>
public sealed record Hop(string Host, IPAddress? Address, int Port, string? Tls)
{
    public override string ToString() => Address is null ? Port == 0 ? Host : $"{Host}:{Port}" : $"{Host}[{Address}]:{Port}";
}

/// <summary>
/// The way out for remote recipients: by MX (<see cref="DomainDelivery"/>) or through the smarthost
/// (<see cref="SmarthostDelivery"/>).
/// </summary>
public interface IRemoteDelivery
{
    /// <summary>The name in log lines and metrics: smtp or smarthost.</summary>
    string Transport { get; }

    /// <summary>What the per-destination connection limit counts for <paramref name="domain"/>: the domain, or the one smarthost.</summary>
    string Destination(string domain);

    /// <summary>
    /// The outcome for each recipient (all of <paramref name="domain"/>), in the order given.
    /// <paramref name="forwarding"/> is set when the recipients came from an alias of a local domain.
    /// </summary>
    Task<IReadOnlyList<(string Recipient, DeliveryOutcome Outcome)>> DeliverAsync(
        SpooledMessage message, string domain, IReadOnlyList<string> recipients, Forwarding? forwarding = null, CancellationToken cancellationToken = default);
}

/// <summary>
/// A copy Postern sends on for an alias of <paramref name="Domain"/> (a local domain) to a remote
/// address: the envelope sender is rewritten with SRS and the message gets an ARC set (see <see cref="Forwarder"/>).
/// </summary>
public sealed record Forwarding(string Domain);
