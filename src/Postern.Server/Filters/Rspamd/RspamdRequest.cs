using System.Net;
using Postern.Server.Configuration;

namespace Postern.Server.Filters.Rspamd;

/// <summary>
/// What the SMTP session knows about one message, sent to rspamd as the request headers of its
/// protocol (Ip, Helo, Hostname, From, Rcpt, Queue-Id, User, TLS-Cipher, TLS-Version); a null
/// field is left out, so rspamd works it out itself or does without.
/// </summary>
public sealed record RspamdRequest
{
    /// <summary>The listener's role: picks Rspamd.SettingsIdMx or Rspamd.SettingsIdSubmission, and whether submission is scanned at all.</summary>
    public required ListenerRole Role { get; init; }

    /// <summary>The client's address (after the PROXY protocol, when there is one).</summary>
    public IPAddress? ClientAddress { get; init; }

    /// <summary>The client's verified host name (forward-confirmed PTR); null when unknown, and rspamd looks it up.</summary>
    public string? ClientHostname { get; init; }

    /// <summary>The EHLO/HELO argument.</summary>
    public string? Helo { get; init; }

    /// <summary>The MAIL FROM address; "" for the null reverse-path (sent as "&lt;&gt;", which rspamd reads as a bounce).</summary>
    public string? MailFrom { get; init; }

    /// <summary>The accepted RCPT TO addresses.</summary>
    public IReadOnlyList<string> Recipients { get; init; } = [];

    /// <summary>The queue id the message will have: rspamd logs it, so its log and Postern's meet.</summary>
    public string? QueueId { get; init; }

    /// <summary>The authenticated user (AUTH), so rspamd applies its rules for local senders (and signs DKIM, when it is told to).</summary>
    public string? User { get; init; }

    /// <summary>The TLS cipher suite of the session, e.g. TLS_AES_256_GCM_SHA384; null without TLS.</summary>
    public string? TlsCipher { get; init; }

    /// <summary>The TLS version, e.g. TLSv1.3; null without TLS.</summary>
    public string? TlsVersion { get; init; }

    /// <summary>Ask rspamd to run every rule even once the result is certain (its Pass: all): for a diagnosis, not for mail.</summary>
    public bool PassAll { get; init; }
}
