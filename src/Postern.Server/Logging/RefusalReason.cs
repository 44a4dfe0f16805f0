using Postern.Protocol.Replies;

namespace Postern.Server.Logging;

/// <summary>
/// Why a session refused something: the closed vocabulary of the <c>reason</c> key of the
/// <c>rejected</c>, <c>connection_refused</c> and <c>quarantined</c> events (docs/telemetry.md). One
/// word each, lower case with underscores, so that <c>grep reason=relay_denied</c> finds them all and
/// a key=value parser needs no quotes; the free text beside it (<c>detail</c>) says the particulars.
/// Words are part of the log contract: add new ones, never rename one.
/// </summary>
public enum RefusalReason
{
    /// <summary>RCPT to a remote address from a client neither authenticated nor in Relay.TrustedNetworks.</summary>
    RelayDenied,
    /// <summary>RCPT to an address of a local domain that has no account or alias.</summary>
    UnknownUser,
    /// <summary>RCPT to an address literal (user@[192.0.2.1]).</summary>
    AddressLiteral,
    /// <summary>A non-ASCII address without the SMTPUTF8 parameter (RFC 6531 §3.4).</summary>
    Smtputf8Required,
    /// <summary>More recipients than Limits.MaxRecipients in one message.</summary>
    TooManyRecipients,
    /// <summary>A rate limit: connections per minute, messages or recipients per hour (detail says which).</summary>
    Rate,
    /// <summary>Too many simultaneous connections, in all or from one address.</summary>
    ConnectionLimit,
    /// <summary>The client's DNS blocklist score reached Dnsbl.Threshold.</summary>
    Dnsbl,
    /// <summary>The client talked before the greeting (connection triage).</summary>
    Pregreet,
    /// <summary>The client sent commands before the EHLO reply allowed pipelining (connection triage).</summary>
    EarlyPipelining,
    /// <summary>HTTP or other input that is not SMTP.</summary>
    NonSmtp,
    /// <summary>SPF fail with MailAuth.RejectSpfFail.</summary>
    Spf,
    /// <summary>DMARC p=reject (or, for quarantined, p=quarantine) with MailAuth.EnforceDmarc.</summary>
    Dmarc,
    /// <summary>MAIL without AUTH on a submission listener.</summary>
    AuthRequired,
    /// <summary>A command that needs TLS first (submission before STARTTLS, AUTH in clear text).</summary>
    TlsRequired,
    /// <summary>AUTH with wrong credentials, or an authorization identity that is not the user's.</summary>
    AuthFailed,
    /// <summary>AUTH cancelled by the client (RFC 4954 §4).</summary>
    AuthCancelled,
    /// <summary>AUTH from a banned address, /64 or account.</summary>
    Ban,
    /// <summary>An authenticated user's MAIL FROM an address that is not theirs.</summary>
    SenderNotOwned,
    /// <summary>A message, or its header section, larger than the limits (Limits.MaxMessageSize, MaxHeaderSize, MaxHeaderFields).</summary>
    TooBig,
    /// <summary>More Received fields than Limits.MaxHops: a mail loop.</summary>
    TooManyHops,
    /// <summary>A command line or a text line of the content longer than RFC 5321 §4.5.3.1 allows.</summary>
    LineTooLong,
    /// <summary>A bare CR or LF in a command or in the content (SPEC §5).</summary>
    BareLineEnding,
    /// <summary>Content that no SMTP message may carry (a NUL character).</summary>
    BadContent,
    /// <summary>A command or parameter that does not parse (500/501/555).</summary>
    Syntax,
    /// <summary>A verb that is not SMTP.</summary>
    UnknownCommand,
    /// <summary>A command, parameter or AUTH mechanism that is not implemented (502/504).</summary>
    NotImplemented,
    /// <summary>A command out of order (503), including anything but QUIT after a refusal at connect.</summary>
    BadSequence,
    /// <summary>Data pipelined after STARTTLS before the handshake (command injection, RFC 3207 §5).</summary>
    StarttlsInjection,
    /// <summary>The disk refused the message (452 4.3.1).</summary>
    DiskFull,
    /// <summary>More MIME parts than Limits.MaxMimeParts, or nested deeper than Limits.MaxMimeDepth (554 5.6.0).</summary>
    MimeStructure,
    /// <summary>Mail authentication (DKIM, ARC, DMARC) failed unexpectedly for this message (451 4.7.0); the next message is checked afresh.</summary>
    MailAuthError,
    /// <summary>More than Limits.MaxJunkCommands commands that move no mail forward (NOOP, RSET, VRFY, ...).</summary>
    JunkCommands,
    /// <summary>The session outlived Limits.SessionLifetime.</summary>
    SessionLifetime,
}

/// <summary>The log words of <see cref="RefusalReason"/>.</summary>
public static class RefusalReasons
{
    /// <summary>The word written after <c>reason=</c>; a constant, so logging it allocates nothing.</summary>
    public static string Word(this RefusalReason reason) => reason switch
    {
        RefusalReason.RelayDenied => "relay_denied",
        RefusalReason.UnknownUser => "unknown_user",
        RefusalReason.AddressLiteral => "address_literal",
        RefusalReason.Smtputf8Required => "smtputf8_required",
        RefusalReason.TooManyRecipients => "too_many_recipients",
        RefusalReason.Rate => "rate",
        RefusalReason.ConnectionLimit => "connection_limit",
        RefusalReason.Dnsbl => "dnsbl",
        RefusalReason.Pregreet => "pregreet",
        RefusalReason.EarlyPipelining => "early_pipelining",
        RefusalReason.NonSmtp => "non_smtp",
        RefusalReason.Spf => "spf",
        RefusalReason.Dmarc => "dmarc",
        RefusalReason.AuthRequired => "auth_required",
        RefusalReason.TlsRequired => "tls_required",
        RefusalReason.AuthFailed => "auth_failed",
        RefusalReason.AuthCancelled => "auth_cancelled",
        RefusalReason.Ban => "ban",
        RefusalReason.SenderNotOwned => "sender_not_owned",
        RefusalReason.TooBig => "too_big",
        RefusalReason.TooManyHops => "too_many_hops",
        RefusalReason.LineTooLong => "line_too_long",
        RefusalReason.BareLineEnding => "bare_line_ending",
        RefusalReason.BadContent => "bad_content",
        RefusalReason.Syntax => "syntax",
        RefusalReason.UnknownCommand => "unknown_command",
        RefusalReason.NotImplemented => "not_implemented",
        RefusalReason.BadSequence => "bad_sequence",
        RefusalReason.StarttlsInjection => "starttls_injection",
        RefusalReason.DiskFull => "disk_full",
        RefusalReason.MimeStructure => "mime_structure",
        RefusalReason.MailAuthError => "mail_auth_error",
        RefusalReason.JunkCommands => "junk_commands",
        RefusalReason.SessionLifetime => "session_lifetime",
        _ => throw new ArgumentOutOfRangeException(nameof(reason)),
    };

    /// <summary>
    /// The reason for a reply that the parser or the command table chose (the session did not decide
    /// it itself): by the catalogue entry where one is told apart, else by the reply code (RFC 5321 §4.2.3).
    /// </summary>
    public static RefusalReason Of(SmtpReply reply) =>
        ReferenceEquals(reply, Reply.LineTooLong) ? RefusalReason.LineTooLong
        : ReferenceEquals(reply, Reply.BareLineEndingInCommand) ? RefusalReason.BareLineEnding
        : ReferenceEquals(reply, Reply.NonSmtpInput) ? RefusalReason.NonSmtp
        : ReferenceEquals(reply, Reply.UnknownCommand) ? RefusalReason.UnknownCommand
        : ReferenceEquals(reply, Reply.TlsRequired) || ReferenceEquals(reply, Reply.EncryptionRequiredForAuth) ? RefusalReason.TlsRequired
        : ReferenceEquals(reply, Reply.Utf8AddressNeedsSmtpUtf8) ? RefusalReason.Smtputf8Required
        : ReferenceEquals(reply, Reply.MessageTooBig) ? RefusalReason.TooBig
        : reply.Code switch
        {
            503 => RefusalReason.BadSequence,
            502 or 504 => RefusalReason.NotImplemented,
            _ => RefusalReason.Syntax,
        };
}
