namespace Postern.Server.Configuration;

/// <summary>
/// The whole configuration (SPEC §2). Key names are part of the product contract; each is
/// documented in docs/configuration.md next to its default, and a test keeps the two in step.
/// </summary>
public sealed class PosternOptions
{
    /// <summary>The name this server gives in its greeting, EHLO reply and Received headers. Required.</summary>
    public string Hostname { get; set; } = "";

    /// <summary>Where the queue, mailboxes, passwd file and keys live. Required.</summary>
    public string DataDirectory { get; set; } = "";

    /// <summary>
    /// The Unix user `serve` runs as when started as root (it binds its ports first, then switches),
    /// and the user every other verb run as root acts as. Default: none, which means the owner of
    /// <see cref="DataDirectory"/>: so nothing made by root is ever left in it (Postfix's mail_owner).
    /// </summary>
    public string? User { get; set; }

    /// <summary>Domains this server receives mail for. Required (at least one).</summary>
    public List<string> Domains { get; set; } = [];

    /// <summary>The listening sockets, each with a role. Required (at least one).</summary>
    public List<ListenerOptions> Listeners { get; set; } = [];

    public TlsOptions Tls { get; set; } = new();
    public RelayOptions Relay { get; set; } = new();
    public DnsOptions Dns { get; set; } = new();
    public DeliveryOptions Delivery { get; set; } = new();
    public LimitsOptions Limits { get; set; } = new();
    public TriageOptions Triage { get; set; } = new();
    public MailAuthOptions MailAuth { get; set; } = new();
    public DnsblOptions Dnsbl { get; set; } = new();
    public AccountsOptions Accounts { get; set; } = new();
    public LoggingOptions Logging { get; set; } = new();
    public SendmailOptions Sendmail { get; set; } = new();
    public FiltersOptions Filters { get; set; } = new();

    /// <summary>rspamd over its HTTP protocol at the end of DATA (docs/filters-rspamd.md). Default: off (no Url).</summary>
    public RspamdOptions Rspamd { get; set; } = new();

    /// <summary>Address → list of targets (local accounts or remote addresses). Default: none.</summary>
    public Dictionary<string, List<string>> Aliases { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Resolves a path from the configuration: relative paths are relative to <see cref="DataDirectory"/>.</summary>
    public string ResolvePath(string path) => Path.IsPathRooted(path) ? path : Path.Combine(DataDirectory, path);
}

/// <summary>What a listener is for (SPEC §2 Roles).</summary>
public enum ListenerRole
{
    /// <summary>Port 25: mail from the world for local domains; STARTTLS offered; relaying only when authenticated or trusted.</summary>
    Mx,
    /// <summary>Port 587: STARTTLS, then AUTH, both required before MAIL (RFC 6409).</summary>
    Submission,
    /// <summary>Port 465: implicit TLS (RFC 8314), AUTH required.</summary>
    Submissions,
}

public sealed class ListenerOptions
{
    /// <summary>A name for logs and metrics. Default: the role.</summary>
    public string Name { get; set; } = "";

    /// <summary>IP:port to bind, e.g. 0.0.0.0:25 or [::]:25. Required.</summary>
    public string Endpoint { get; set; } = "";

    /// <summary>mx, submission or submissions. Required.</summary>
    public ListenerRole Role { get; set; } = ListenerRole.Mx;

    /// <summary>
    /// Every connection starts with a PROXY protocol header (v1 or v2, HAProxy's proxy-protocol.txt)
    /// from a proxy in <see cref="TrustedProxies"/>, and the client it names is the one limits, relaying,
    /// logs and Received headers see. Default false: a header is then never looked for, so no client
    /// can claim another's address.
    /// </summary>
    public bool ProxyProtocol { get; set; }

    /// <summary>Networks (CIDR) of the proxies allowed to connect when <see cref="ProxyProtocol"/> is on; any other peer is dropped. Default: none (required with ProxyProtocol).</summary>
    public List<string> TrustedProxies { get; set; } = [];

    /// <summary>This listener's mail authentication policy, setting by setting; unset ones are MailAuth's. Default: none.</summary>
    public MailAuthPolicy? MailAuth { get; set; }
}

public sealed class TlsOptions
{
    /// <summary>PEM certificate chain. Required unless <see cref="Generate"/>.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>PEM private key. Required unless <see cref="Generate"/>.</summary>
    public string? KeyPath { get; set; }

    /// <summary>Generate a self-signed certificate under DATA/tls on first start. Default false; true under --dev.</summary>
    public bool Generate { get; set; }

    /// <summary>
    /// How long before the certificate expires a warning is logged, at start and then daily.
    /// Default 21 days: Let's Encrypt clients renew at 30 days left, so a warning means renewal has
    /// been failing for over a week and there are three left to fix it. Zero turns the warning off
    /// (an expired certificate is still logged as an error).
    /// </summary>
    public TimeSpan ExpiryWarning { get; set; } = TimeSpan.FromDays(21);
}

public sealed class RelayOptions
{
    /// <summary>Networks (CIDR) whose clients may relay without AUTH on the mx role. Default: none.</summary>
    public List<string> TrustedNetworks { get; set; } = [];

    /// <summary>Send all remote mail through this host. Default: none.</summary>
    public SmarthostOptions? Smarthost { get; set; }
}

public sealed class SmarthostOptions
{
    public string Host { get; set; } = "";
    public int Port { get; set; } = 587;
    /// <summary>starttls or implicit.</summary>
    public string Tls { get; set; } = "starttls";
    public string? Username { get; set; }
    public string? PasswordFile { get; set; }
    /// <summary>Refuse a smarthost whose certificate is not valid for Host. Default true: the password goes there.</summary>
    public bool VerifyCertificate { get; set; } = true;
}

/// <summary>How log lines look (docs/telemetry.md).</summary>
public enum LogFormat
{
    /// <summary><c>TIME LEVEL event=NAME key=value ...</c>: for people and grep.</summary>
    KeyValue,
    /// <summary>One JSON object per line: for log shippers.</summary>
    Json,
}

public sealed class LoggingOptions
{
    /// <summary>
    /// The lowest level logged: trace, debug, information, warning, error, critical or none. Default
    /// information: every event of the catalogue (docs/telemetry.md) and nothing of the libraries' own chatter.
    /// </summary>
    public Microsoft.Extensions.Logging.LogLevel Level { get; set; } = Microsoft.Extensions.Logging.LogLevel.Information;

    /// <summary>keyvalue or json. Default keyvalue: one line a person can read and grep (SPEC §7).</summary>
    public LogFormat Format { get; set; } = LogFormat.KeyValue;
}

public sealed class DnsOptions
{
    /// <summary>DNS servers (IP or IP:port); empty means the system resolvers.</summary>
    public List<string> Servers { get; set; } = [];

    /// <summary>How long one DNS query may take before it is tried once more, then given up (a temporary failure). Default 5 seconds.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(5);
}

public sealed class DeliveryOptions
{
    /// <summary>Port for outbound SMTP; 25 in production, another only for tests.</summary>
    public int RemotePort { get; set; } = 25;

    /// <summary>How long a message may stay queued before it bounces. Default 5 days (RFC 5321 §4.5.4.1).</summary>
    public TimeSpan MaxQueueLifetime { get; set; } = TimeSpan.FromDays(5);

    /// <summary>When a delay warning is sent. Default 4 hours.</summary>
    public TimeSpan DelayWarningAfter { get; set; } = TimeSpan.FromHours(4);

    /// <summary>Local delivery workers. Default 4.</summary>
    public int LocalConcurrency { get; set; } = 4;

    /// <summary>Messages being delivered to other servers at once (each waits on the network). Default 50.</summary>
    public int RemoteConcurrency { get; set; } = 50;

    /// <summary>Deliveries to one destination domain (or to the smarthost) at once. Default 20 (as Postfix's default_destination_concurrency_limit).</summary>
    public int DestinationConcurrency { get; set; } = 20;

    /// <summary>Wait before the first retry of a deferred recipient; it doubles with each attempt, less a jitter of up to a fifth (Delivery/RetrySchedule). Default 5 minutes.</summary>
    public TimeSpan RetryInitialDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The longest wait between two attempts. Default 4 hours.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromHours(4);

    /// <summary>Acknowledge durably, then drop instead of delivering (for benchmarks, like Postfix's discard transport). Default false.</summary>
    public bool Discard { get; set; }

    /// <summary>
    /// The local addresses outgoing connections come from, at most one IPv4 and one IPv6 (Postfix's
    /// smtp_bind_address): on a host with several, the one your SPF record and PTR name. Default: none,
    /// the system chooses.
    /// </summary>
    public List<string> BindAddresses { get; set; } = [];

    /// <summary>
    /// An LMTP server (RFC 2033) local mail is handed to instead of being written into the Maildir:
    /// "unix:/run/dovecot/lmtp" (or "/run/dovecot/lmtp") for a unix socket, "host:port" for TCP, so
    /// that Dovecot's Sieve filters, vacation replies and quotas apply. Default null: Postern writes
    /// the Maildir itself, which needs no other program.
    /// </summary>
    public string? Lmtp { get; set; }
}

public sealed class MailAuthOptions
{
    /// <summary>SPF, DKIM, DMARC and ARC checked on mail from other servers, with an Authentication-Results field added. Default true (false under --dev).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Refuse a message whose MAIL FROM fails SPF (550 5.7.23) instead of only recording it. Default false: DMARC decides with the domain's own policy.</summary>
    public bool RejectSpfFail { get; set; }

    /// <summary>Apply the sender domain's DMARC policy: reject (550 5.7.1 at the end of DATA) or quarantine (to the Junk folder). False: only record it. Default true.</summary>
    public bool EnforceDmarc { get; set; } = true;

    /// <summary>Clients in Relay.TrustedNetworks are not checked (they are our own machines). Default true.</summary>
    public bool SkipTrustedNetworks { get; set; } = true;

    /// <summary>Rewrite the envelope sender of mail an alias forwards to a remote address with SRS, into the alias's domain, so that SPF passes at the next hop; SRS bounces to that domain are accepted and sent back. Default true.</summary>
    public bool Srs { get; set; } = true;

    /// <summary>Add an ARC set (RFC 8617) to mail from other servers that an alias forwards, signed with a DKIM key of the alias's domain (when there is one). Default true.</summary>
    public bool ArcSeal { get; set; } = true;

    /// <summary>The checks that apply on <paramref name="listener"/>: its own MailAuth settings where it has them, these otherwise.</summary>
    public EffectiveMailAuth For(ListenerOptions listener) => new(
        listener.MailAuth?.Enabled ?? Enabled,
        listener.MailAuth?.RejectSpfFail ?? RejectSpfFail,
        listener.MailAuth?.EnforceDmarc ?? EnforceDmarc,
        listener.MailAuth?.SkipTrustedNetworks ?? SkipTrustedNetworks);
}

/// <summary>The mail authentication settings in force on one listener.</summary>
public readonly record struct EffectiveMailAuth(bool Enabled, bool RejectSpfFail, bool EnforceDmarc, bool SkipTrustedNetworks);

/// <summary>
/// A listener's own mail authentication policy (Listeners[].MailAuth); a setting left out takes the
/// global MailAuth one. For example an mx listener for a partner's relay that only records results.
/// </summary>
public sealed class MailAuthPolicy
{
    public bool? Enabled { get; set; }

    public bool? RejectSpfFail { get; set; }

    public bool? EnforceDmarc { get; set; }

    public bool? SkipTrustedNetworks { get; set; }
}

public sealed class TriageOptions
{
    /// <summary>Connection triage on mx listeners (greeting pause, pregreet, early pipelining). Default true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>How long a new client waits for the greeting; talking meanwhile gets it refused. Default 6 seconds.</summary>
    public TimeSpan GreetingPause { get; set; } = TimeSpan.FromSeconds(6);

    /// <summary>How long a client that passed is spared the pause. Default 1 day.</summary>
    public TimeSpan CacheTime { get; set; } = TimeSpan.FromDays(1);
}

/// <summary>
/// DNS block and allow lists checked at connect on mx listeners (RFC 5782; Postfix's postscreen
/// DNSBL test is the model). Default: no lists, so nothing is looked up: a list is a policy choice
/// with its own terms of use.
/// </summary>
public sealed class DnsblOptions
{
    /// <summary>Block lists; the weights of those that list a client add up. Default: none (the check is off).</summary>
    public List<DnsListOptions> Lists { get; set; } = [];

    /// <summary>Allow lists (DNSWL); the weights of those that list a client are taken off. Default: none.</summary>
    public List<DnsListOptions> AllowLists { get; set; } = [];

    /// <summary>The score at which a client is refused. Default 1 (as Postfix's postscreen_dnsbl_threshold): any one list.</summary>
    public int Threshold { get; set; } = 1;

    /// <summary>How long all the lists together may take; a list not answered by then is skipped. Default 5 seconds (inside the 6-second greeting pause).</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a client's verdict is kept. Default 10 minutes.</summary>
    public TimeSpan CacheTime { get; set; } = TimeSpan.FromMinutes(10);
}

/// <summary>One DNS list: its zone, its weight, and which answers count.</summary>
public sealed class DnsListOptions
{
    /// <summary>The list's DNS zone, e.g. zen.spamhaus.org. Required.</summary>
    public string Zone { get; set; } = "";

    /// <summary>What a listing counts for. Default 1.</summary>
    public int Weight { get; set; } = 1;

    /// <summary>The answers that count as a listing, e.g. 127.0.0.[2..11]. Default: none given, every answer in 127.0.0.0/8.</summary>
    public List<string> Answers { get; set; } = [];
}

public sealed class LimitsOptions
{
    /// <summary>Largest message accepted, in octets (advertised in SIZE). Default 50 MiB.</summary>
    public long MaxMessageSize { get; set; } = 52_428_800;

    /// <summary>Recipients per transaction. Default 100 (RFC 5321 §4.5.3.1.8 minimum).</summary>
    public int MaxRecipients { get; set; } = 100;

    /// <summary>
    /// Open connections on each mx listener (until issue 12: on all listeners together). Default
    /// 10,000: an idle session costs about 8 KiB (bench/RESULTS.md), so 80 MiB; the file-descriptor
    /// limit is raised to fit at start. When full, the longest idle session is shed (docs/security.md).
    /// </summary>
    public int MaxConnections { get; set; } = 10_000;

    /// <summary>
    /// Open connections on each submission and submissions listener, apart from the mx listeners'
    /// (so idle connections on port 25 never lock users out). Default 1,000: an idle TLS session
    /// costs about 42 KiB, so 42 MiB.
    /// </summary>
    public int MaxConnectionsSubmission { get; set; } = 1000;

    /// <summary>The cap of a listener of <paramref name="role"/>.</summary>
    public int CapFor(ListenerRole role) => role == ListenerRole.Mx ? MaxConnections : MaxConnectionsSubmission;

    /// <summary>Open connections per client IP. Default 20.</summary>
    public int MaxConnectionsPerIp { get; set; } = 20;

    /// <summary>Waiting for a command. Default 5 minutes (RFC 5321 §4.5.3.2.7).</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// A whole TLS handshake (STARTTLS, or port 465's), and all the lines of one AUTH exchange
    /// together. Default 30 seconds: a real client needs milliseconds; a client that stalls in the
    /// middle would otherwise hold a submission slot for CommandTimeout each time (issue 12).
    /// </summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Waiting for the next block of message data. Default 3 minutes (RFC 5321 §4.5.3.2.6).</summary>
    public TimeSpan DataTimeout { get; set; } = TimeSpan.FromMinutes(3);

    /// <summary>Slowest accepted DATA/BDAT rate in octets per second, once DataTimeout has passed; 0: none. Default 500 (as Postfix's smtpd_min_data_rate).</summary>
    public int MinDataRate { get; set; } = 500;

    /// <summary>Largest header section accepted, in octets. Default 1 MiB.</summary>
    public int MaxHeaderSize { get; set; } = 1024 * 1024;

    /// <summary>Most header fields accepted. Default 1000.</summary>
    public int MaxHeaderFields { get; set; } = 1000;

    /// <summary>Most Received fields (hops) accepted before a message is taken for a loop. Default 50 (as Postfix's hopcount_limit).</summary>
    public int MaxHops { get; set; } = 50;

    /// <summary>
    /// Most MIME body parts a message may have (RFC 2046 §5.1: each boundary delimiter line opens one),
    /// counted as the data streams. Default 10,000: real mail has a handful, a digest hundreds; a MIME
    /// bomb packs a million empty parts into 7 MB, and whatever parses a message later (a filter, a
    /// mail client) pays per part. Over it: 554 5.6.0.
    /// </summary>
    public int MaxMimeParts { get; set; } = 10_000;

    /// <summary>
    /// Deepest nesting of multiparts and encapsulated messages (message/rfc822) a message may have.
    /// Default 100, as Postfix's mime_nesting_limit: real mail nests a few levels (a forward of a
    /// forward), deep nesting only serves to exhaust recursive parsers. Over it: 554 5.6.0.
    /// </summary>
    public int MaxMimeDepth { get; set; } = 100;

    /// <summary>Refused commands per session before 421 and disconnect. Default 20 (as Postfix's smtpd_hard_error_limit).</summary>
    public int MaxErrors { get; set; } = 20;

    /// <summary>
    /// Junk commands per session (NOOP, RSET, VRFY, EXPN, HELP, unknown and refused commands, a
    /// recipient given again) before 421 4.7.0 and disconnect; an accepted message starts the count
    /// again. Default 100, as Postfix's smtpd_junk_command_limit: no honest client sends a hundred
    /// commands that move no mail forward, and without a bound NOOP holds a connection for ever.
    /// </summary>
    public int MaxJunkCommands { get; set; } = 100;

    /// <summary>
    /// The longest a session may last, from connect; past it the next command boundary gets 421 4.4.2
    /// and the connection closes. A transaction in progress is not cut (its data keeps its own
    /// deadlines) but no new command is read after it. Default 1 hour: a 50 MiB message at the
    /// minimum data rate (500 octets/s) needs about 29 hours, but real senders move megabytes per
    /// second and any client can reconnect; an hour is far beyond an honest session (Postfix
    /// sessions last seconds) and short enough that a held slot is given back.
    /// </summary>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>New connections per client address (IPv6: per /64) per minute; 0: no limit. Default 100.</summary>
    public int MaxConnectionsPerIpPerMinute { get; set; } = 100;

    /// <summary>Messages per client address per hour, without AUTH; 0: no limit. Default 1000.</summary>
    public int MaxMessagesPerHourPerIp { get; set; } = 1000;

    /// <summary>Recipients per client address per hour, without AUTH; 0: no limit. Default 2000.</summary>
    public int MaxRecipientsPerHourPerIp { get; set; } = 2000;

    /// <summary>Messages per authenticated user per hour; 0: no limit. Default 500.</summary>
    public int MaxMessagesPerHourPerUser { get; set; } = 500;

    /// <summary>Recipients per authenticated user per hour; 0: no limit. Default 1000.</summary>
    public int MaxRecipientsPerHourPerUser { get; set; } = 1000;

    /// <summary>From this many errors in a session on, each error reply is held back (the tarpit); 0: never. Default 3.</summary>
    public int TarpitAfterErrors { get; set; } = 3;

    /// <summary>The first tarpit delay; the n-th error past the threshold waits n times this, at most ten times. Default 1 second.</summary>
    public TimeSpan TarpitDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Time a SIGTERM waits for transactions in flight. Default 30 seconds.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(30);
}

public sealed class AccountsOptions
{
    /// <summary>Dovecot passwd-file with argon2id hashes. Default "passwd" in the data directory.</summary>
    public string PasswdFile { get; set; } = "passwd";

    /// <summary>Failed AUTH per address within <see cref="FailureWindow"/> before it is banned (an IPv6 /64: four times this). Default 5.</summary>
    public int MaxAuthFailures { get; set; } = 5;

    /// <summary>Failed AUTH for one account, from anywhere, within <see cref="FailureWindow"/> before the account is banned (except from addresses it logged in from). Default 10.</summary>
    public int MaxAuthFailuresPerAccount { get; set; } = 10;

    /// <summary>The longest ban: each repeat ban doubles <see cref="LockoutDuration"/> up to this. Default 1 day.</summary>
    public TimeSpan MaxLockoutDuration { get; set; } = TimeSpan.FromDays(1);

    /// <summary>The window failures are counted in. Default 15 minutes.</summary>
    public TimeSpan FailureWindow { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How long a first ban lasts. Default 15 minutes.</summary>
    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Delay before the first 535 reply; doubles per failure from that IP up to 8 s. Default 1 second.</summary>
    public TimeSpan FailureDelay { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>`postern sendmail` and the pickup of DATA/maildrop/ (docs/security.md, Local submission).</summary>
public sealed class SendmailOptions
{
    /// <summary>
    /// Unix users who may give any envelope sender with `sendmail -f` (as Postfix's and Sendmail's
    /// trusted users). root and the user the server runs as always may; everyone else may give only
    /// their own address (NAME@Hostname or NAME+tag@Hostname). Default: none, so that a local user
    /// cannot send as someone else.
    /// </summary>
    public List<string> TrustedUsers { get; set; } = [];
}

/// <summary>Content filters (issue 13): milters, asked at each SMTP stage (docs/filters.md).</summary>
public sealed class FiltersOptions
{
    /// <summary>The milters, asked in this order at every stage. Default: none (no filtering).</summary>
    public List<MilterOptions> Milters { get; set; } = [];
}

/// <summary>One milter (the Sendmail milter protocol, version 6): where it listens, its timeouts, what to do when it is down.</summary>
public sealed class MilterOptions
{
    /// <summary>A name for logs and the queue entry. Required, unique.</summary>
    public string Name { get; set; } = "";

    /// <summary>Where it listens: unix:/path, inet:host:port (or Sendmail's inet:port@host), or host:port. Required.</summary>
    public string Address { get; set; } = "";

    /// <summary>Whether it is asked on submission listeners too (e.g. OpenDKIM signing). Default false: mx listeners only.</summary>
    public bool Submission { get; set; }

    /// <summary>How long connecting may take. Default 30 seconds (Postfix's milter_connect_timeout).</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long it may take to answer connect, HELO, MAIL, RCPT and DATA. Default 30 seconds (Postfix's milter_command_timeout).</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long it may take to answer each header, body chunk and the end of message. Default 5 minutes (Postfix's milter_content_timeout).</summary>
    public TimeSpan ContentTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>What happens when it is down, times out or breaks the protocol. Default tempfail (Postfix's milter_default_action): no mail passes unfiltered.</summary>
    public MilterDefaultAction DefaultAction { get; set; } = MilterDefaultAction.Tempfail;
}

/// <summary>What a session does when a milter is unavailable (Postfix's milter_default_action).</summary>
public enum MilterDefaultAction
{
    /// <summary>451 4.7.1: the client tries again later.</summary>
    Tempfail,
    /// <summary>Go on without this milter for the rest of the session.</summary>
    Accept,
}
