namespace Postern.Protocol.Replies;

/// <summary>
/// The catalogue: every reply Postern sends, in one place (STYLE principle 5). Plain words, no
/// internals, no version numbers. Handlers pick a reply from here, never spell a code themselves.
/// </summary>
public static class Reply
{
    // 2xx
    public static readonly SmtpReply SenderOk = new(250, "2.1.0", "Sender OK");
    public static readonly SmtpReply RecipientOk = new(250, "2.1.5", "Recipient OK");
    public static readonly SmtpReply DuplicateRecipient = new(250, "2.1.5", "Recipient OK (duplicate recipient ignored)");
    public static readonly SmtpReply ResetOk = new(250, "2.0.0", "Reset OK");
    public static readonly SmtpReply NoopOk = new(250, "2.0.0", "OK");
    public static readonly SmtpReply Bye = new(221, "2.0.0", "Bye");
    public static readonly SmtpReply StartData = new(354, null, "End data with <CR><LF>.<CR><LF>");
    public static readonly SmtpReply ReadyToStartTls = new(220, "2.0.0", "Ready to start TLS");
    public static readonly SmtpReply AuthSucceeded = new(235, "2.7.0", "Authentication successful");
    public static readonly SmtpReply VrfyCannot = new(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery");
    public static readonly SmtpReply HelpText = new(214, "2.0.0", "See RFC 5321, https://www.rfc-editor.org/rfc/rfc5321");
    public static SmtpReply Queued(string queueId) => new(250, "2.0.0", $"OK queued as {queueId}");
    public static SmtpReply ChunkOk(long size) => new(250, "2.0.0", $"{size} octets received");

    // 4xx
    public static readonly SmtpReply ShuttingDown = new(421, "4.3.2", "Service shutting down, try again later");
    public static readonly SmtpReply CommandTimeout = new(421, "4.4.2", "Timeout waiting for a command, closing connection");
    public static readonly SmtpReply DataTimeout = new(421, "4.4.2", "Timeout waiting for message data, closing connection");
    public static readonly SmtpReply TooManyErrors = new(421, "4.7.0", "Too many errors, closing connection");
    public static readonly SmtpReply TooManyJunkCommands = new(421, "4.7.0", "Too many commands that move no mail forward, closing connection");
    public static readonly SmtpReply SessionLifetimeReached = new(421, "4.4.2", "Session too long, closing connection; please reconnect");
    public static readonly SmtpReply TooManyConnections = new(421, "4.7.0", "Too many connections, try again later");
    public static readonly SmtpReply TooManyConnectionsFromIp = new(421, "4.7.0", "Too many connections from your address, try again later");
    public static readonly SmtpReply IdleShed = new(421, "4.7.0", "Server busy, closing idle connection");
    public static readonly SmtpReply Pregreet = new(554, "5.5.1", "Protocol error: you talked before my greeting");
    public static readonly SmtpReply EarlyPipelining = new(554, "5.5.1", "Protocol error: commands sent before the EHLO reply allowed pipelining");
    public static readonly SmtpReply NonSmtpInput = new(554, "5.7.0", "This is an SMTP server: HTTP and other non-SMTP input is refused");
    public static readonly SmtpReply DmarcReject = new(550, "5.7.1", "Message rejected by the DMARC policy of the sender's domain");
    public static readonly SmtpReply SpfFail = new(550, "5.7.23", "SPF validation failed");
    public static readonly SmtpReply ConnectionRateExceeded = new(421, "4.7.0", "Too many new connections from your address, try again later");
    public static readonly SmtpReply MessageRateExceeded = new(450, "4.7.1", "Too many messages from you this hour, try again later");
    public static readonly SmtpReply RecipientRateExceeded = new(452, "4.5.3", "Too many recipients from you this hour, try again later");
    public static readonly SmtpReply TooManyRecipients = new(452, "4.5.3", "Too many recipients");
    public static readonly SmtpReply DiskFull = new(452, "4.3.1", "Insufficient system storage, try again later");
    public static readonly SmtpReply LocalError = new(451, "4.3.0", "Local error in processing, try again later");
    public static readonly SmtpReply AuthLockedOut = new(454, "4.7.0", "Too many failed authentications from your address, try again later");

    // 5xx: syntax and sequence
    public static readonly SmtpReply UnknownCommand = new(500, "5.5.2", "Command not recognized");
    public static readonly SmtpReply LineTooLong = new(500, "5.5.2", "Line too long");
    public static readonly SmtpReply BareLineEndingInCommand = new(554, "5.5.2", "Bare CR or LF in command; lines must end with CRLF. Closing connection");
    public static readonly SmtpReply SyntaxError = new(501, "5.5.4", "Syntax error in parameters or arguments");
    public static readonly SmtpReply HeloRequiresDomain = new(501, "5.5.4", "HELO/EHLO requires a domain or address literal");
    public static readonly SmtpReply BadSenderSyntax = new(501, "5.1.7", "Bad sender address syntax");
    public static readonly SmtpReply BadRecipientSyntax = new(501, "5.1.3", "Bad recipient address syntax");
    public static readonly SmtpReply UnknownParameter = new(555, "5.5.4", "Unsupported MAIL FROM or RCPT TO parameter");
    public static readonly SmtpReply NotImplemented = new(502, "5.5.1", "Command not implemented");
    public static readonly SmtpReply BadSequence = new(503, "5.5.1", "Bad sequence of commands");
    public static readonly SmtpReply SendHeloFirst = new(503, "5.5.1", "Send HELO/EHLO first");
    public static readonly SmtpReply NestedMail = new(503, "5.5.1", "Sender already specified");
    public static readonly SmtpReply NeedMailFirst = new(503, "5.5.1", "Need MAIL command first");
    public static readonly SmtpReply NeedRcptFirst = new(503, "5.5.1", "Need RCPT command first");
    public static readonly SmtpReply AlreadyAuthenticated = new(503, "5.5.1", "Already authenticated");
    public static readonly SmtpReply AuthDuringTransaction = new(503, "5.5.1", "AUTH not permitted during a mail transaction");
    public static readonly SmtpReply AlreadyTls = new(503, "5.5.1", "TLS already active");
    public static readonly SmtpReply DataAfterBdat = new(503, "5.5.1", "DATA not permitted after BDAT in the same transaction");
    public static readonly SmtpReply StartTlsPipelined = new(503, "5.5.1", "Data sent after STARTTLS before the TLS handshake; closing connection");
    public static readonly SmtpReply ParameterNotImplemented = new(504, "5.5.4", "Parameter not implemented");
    public static readonly SmtpReply UnrecognizedAuthMechanism = new(504, "5.5.4", "Unrecognized authentication mechanism");

    // 5xx: policy and content
    public static readonly SmtpReply RelayDenied = new(554, "5.7.1", "Relay access denied");
    public static SmtpReply ListedAtDnsbl(string ip, string zones) => new(554, "5.7.1", $"Service unavailable; client [{ip}] listed at {zones}");
    public static readonly SmtpReply RefusedAtConnect = new(503, "5.5.1", "Bad sequence of commands: this session was refused at connect, only QUIT is accepted");
    public static readonly SmtpReply AuthRequired = new(530, "5.7.0", "Authentication required");
    public static readonly SmtpReply TlsRequired = new(530, "5.7.0", "Must issue a STARTTLS command first");
    public static readonly SmtpReply EncryptionRequiredForAuth = new(538, "5.7.11", "Encryption required for requested authentication mechanism");
    public static readonly SmtpReply AuthFailed = new(535, "5.7.8", "Authentication credentials invalid");
    public static readonly SmtpReply AuthCancelled = new(501, "5.0.0", "Authentication cancelled");
    public static readonly SmtpReply AuthBadBase64 = new(501, "5.5.2", "Cannot decode base64 response");
    public static readonly SmtpReply AuthzidMismatch = new(535, "5.7.8", "Authorization identity must match the authentication identity");
    public static readonly SmtpReply SenderNotOwned = new(553, "5.7.1", "Sender address is not owned by the authenticated user");
    /// <summary>RFC 3463 5.7.1: a From: or Sender: address of the message is not the authenticated user's (SPEC §4).</summary>
    public static readonly SmtpReply HeaderSenderNotOwned = new(550, "5.7.1", "A From: or Sender: address is not owned by the authenticated user");
    public static readonly SmtpReply UnknownUser = new(550, "5.1.1", "No such user here");
    public static readonly SmtpReply AddressLiteralRefused = new(550, "5.1.2", "Address literals are not accepted as recipients");
    public static readonly SmtpReply MessageTooBig = new(552, "5.3.4", "Message size exceeds fixed maximum message size");
    public static readonly SmtpReply BareLineEndingInData = new(554, "5.6.0", "Bare CR or LF in message content; lines must end with CRLF. Closing connection");
    public static readonly SmtpReply HeaderTooLarge = new(552, "5.3.4", "Message header section is too large");
    public static readonly SmtpReply TooManyHeaderFields = new(552, "5.3.4", "Message has too many header fields");
    public static readonly SmtpReply TooManyHops = new(554, "5.4.6", "Too many hops (Received fields): mail loop?");
    // RFC 3463 §3.7 X.6.0, "other or undefined media error": the content's structure, not its size (Postfix says 5.6.0 for mime_nesting_limit too).
    public static readonly SmtpReply TooManyMimeParts = new(554, "5.6.0", "Message has too many MIME parts");
    public static readonly SmtpReply MimeTooDeep = new(554, "5.6.0", "Message MIME structure is nested too deeply");
    // RFC 3463 §3.8 X.7.0, other security status: the check itself failed; RFC 7489 §6.6.2 lets a temporary error defer the message.
    public static readonly SmtpReply MailAuthUnavailable = new(451, "4.7.0", "Message authentication checks failed temporarily, try again later");
    public static readonly SmtpReply DataTooSlow = new(421, "4.4.2", "Message data arrives too slowly, closing connection");
    public static readonly SmtpReply TextLineTooLong = new(554, "5.6.0", "Message content has a line longer than 1000 octets");
    public static readonly SmtpReply Utf8AddressNeedsSmtpUtf8 = new(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter");
}
