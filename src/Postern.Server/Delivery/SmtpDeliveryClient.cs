using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Postern.Server.Queue;
using AuthenticationException = MailKit.Security.AuthenticationException;

namespace Postern.Server.Delivery;

/// <summary>
/// Where one delivery goes: the host's name (for logs), the address and port to connect to, the TLS
/// mode, and, for a smarthost, the credentials and whether its certificate must be valid.
/// </summary>
public sealed record SmtpRoute(string Host, IPAddress Address, int Port, SecureSocketOptions Security = SecureSocketOptions.StartTlsWhenAvailable,
    string? Username = null, Func<string>? Password = null, bool VerifyCertificate = false)
{
    /// <summary>Connections are reused only for the same server, TLS mode and user.</summary>
    internal string CacheKey => $"{Host}|{Address}|{Port}|{Security}|{Username}|{VerifyCertificate}";
}

/// <summary>
/// Hands spooled messages to remote servers with MailKit's SmtpClient and says what became of each
/// recipient. Opportunistic STARTTLS (RFC 7435: encrypt when offered, certificate not checked) unless
/// the route asks for more, EHLO with our host name, SIZE checked before sending, SMTPUTF8 respected,
/// DSN parameters passed on when the peer offers DSN. 4xx and connection trouble defer; 5xx bounce
/// with the peer's own reply.
/// After a clean transaction the connection is kept for up to <see cref="IdleTime"/> so that the next
/// message for the same server goes over it (RFC 5321 §4.5.4.1 allows it; Postfix does the same with
/// its connection cache). A kept connection the server has closed meanwhile is replaced once, silently.
/// </summary>
public sealed class SmtpDeliveryClient : IAsyncDisposable
{
    /// <summary>How long an unused connection stays open. Postfix keeps them 2 s; a little more suits bursts.</summary>
    public static readonly TimeSpan IdleTime = TimeSpan.FromSeconds(5);
    private const int MaxIdlePerServer = 20;
    private readonly string _hostname;
    private readonly TimeProvider _time;
    private readonly TimeSpan _timeout;
    private readonly Dictionary<string, Stack<(EnvelopeSmtpClient Client, DateTimeOffset Since)>> _idle = [];
    private readonly ITimer _sweeper;
    private bool _disposed;

    private readonly Postern.MailAuth.Dkim.DkimSigner? _signer;
    private readonly Forwarder? _forwarder;
    private readonly IReadOnlyList<IPAddress> _bind;

    /// <param name="hostname">The EHLO name.</param>
    /// <param name="time">The clock.</param>
    /// <param name="timeout">Per SMTP command.</param>
    /// <param name="signer">Signs what local users submitted (DKIM, RFC 6376) before it leaves; null: no signing.</param>
    /// <param name="forwarder">SRS and ARC for copies an alias forwards; null: sent on unchanged.</param>
    /// <param name="bind">Local addresses to connect from (Delivery.BindAddresses), one per address family.</param>
    public SmtpDeliveryClient(string hostname, TimeProvider time, TimeSpan? timeout = null, Postern.MailAuth.Dkim.DkimSigner? signer = null, Forwarder? forwarder = null,
        IReadOnlyList<IPAddress>? bind = null)
    {
        _bind = bind ?? [];
        _signer = signer;
        _forwarder = forwarder;
        _hostname = hostname;
        _time = time;
        _timeout = timeout ?? TimeSpan.FromMinutes(5);
        _sweeper = time.CreateTimer(_ => Sweep(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    /// <summary>Connections opened so far (a measure of reuse, for tests and metrics).</summary>
    public int ConnectionsOpened => _opened;
    private int _opened;

    /// <summary>Delivery to a server found by MX: opportunistic STARTTLS, no AUTH.</summary>
    public Task<IReadOnlyList<(string Recipient, DeliveryOutcome Outcome)>> DeliverAsync(
        SpooledMessage message, IReadOnlyList<string> recipients, IPAddress address, int port, CancellationToken cancellationToken = default) =>
        DeliverAsync(message, recipients, new SmtpRoute(address.ToString(), address, port), null, cancellationToken);

    /// <summary>The outcome for each recipient, in the order given.</summary>
    public async Task<IReadOnlyList<(string Recipient, DeliveryOutcome Outcome)>> DeliverAsync(
        SpooledMessage message, IReadOnlyList<string> recipients, SmtpRoute route, Forwarding? forwarding = null, CancellationToken cancellationToken = default)
    {
        var signature = await SignAsync(message, cancellationToken).ConfigureAwait(false);
        // The message is never in memory whole (issue 12: 20 messages of 20 MiB held +514 MiB): MimeKit
        // parses it in persistent mode, each part's content a window onto the spool file that is read
        // again as the message is written to the socket, so only the header fields and the MIME
        // structure (bounded by Limits.MaxMimeParts) are held. The file stays open until the end.
        await using var content = Spool.OpenMessage(message);
        using var spooled = new MimeKit.IO.BoundStream(content, message.MessageOffset, -1, leaveOpen: true);
        using var source = new MimeKit.IO.ChainedStream();
        if (signature.Length > 0)
        {
            // The DKIM-Signature fields go on top; the rest stays byte for byte as spooled.
            source.Add(new MemoryStream(System.Text.Encoding.ASCII.GetBytes(signature), writable: false));
        }
        source.Add(spooled, leaveOpen: true);
        using var mime = await MimeMessage.LoadAsync(source, persistent: true, cancellationToken).ConfigureAwait(false);
        var from = message.Envelope.From;
        if (forwarding is not null && _forwarder is not null)
        {
            from = _forwarder.EnvelopeSender(from, forwarding.Domain);
            // Mail of our own users is DKIM-signed above; what came from outside gets an ARC set.
            if (message.Envelope.AuthUser is null)
            {
                await _forwarder.SealAsync(mime, forwarding.Domain, message.Envelope.AuthenticationResults, cancellationToken).ConfigureAwait(false);
            }
        }
        var server = $"{route.Host}[{route.Address}]:{route.Port}";
        for (var attempt = 0; ; attempt++)
        {
            var client = TakeIdle(route);
            var reused = client is not null;
            var greeted = reused;
            client ??= NewClient(route);
            List<(string, DeliveryOutcome)> All(DeliveryOutcome o) => recipients.Select(r => (r, o with { Via = Hop(route, client) })).ToList();
            try
            {
                if (!reused)
                {
                    Interlocked.Increment(ref _opened);
                    await client.ConnectAsync(route.Address.ToString(), route.Port, route.Security, cancellationToken).ConfigureAwait(false);
                    greeted = true;
                    if (route.Username is not null)
                    {
                        await client.AuthenticateAsync(route.Username, route.Password?.Invoke() ?? "", cancellationToken).ConfigureAwait(false);
                    }
                }
                if (client.Capabilities.HasFlag(SmtpCapabilities.Size) && client.MaxSize > 0 && message.MessageLength > client.MaxSize)
                {
                    Keep(route, client);
                    return All(new DeliveryOutcome.Bounced($"552 5.3.4 Message too big for {server} ({message.MessageLength} > {client.MaxSize} octets)"));
                }
                if (message.Envelope.SmtpUtf8 && !client.Capabilities.HasFlag(SmtpCapabilities.UTF8))
                {
                    Keep(route, client);
                    return All(new DeliveryOutcome.Bounced($"553 5.6.7 {server} does not support SMTPUTF8, which this message needs"));
                }
                client.Begin(message.Envelope);
                var sender = from.Length == 0 ? null : MailboxAddress.Parse(from);
                var options = FormatOptions.Default.Clone();
                options.NewLineFormat = NewLineFormat.Dos;
                options.International = message.Envelope.SmtpUtf8;
                await client.SendAsync(options, mime, sender ?? new MailboxAddress("", ""), recipients.Select(r => MailboxAddress.Parse(r)), cancellationToken).ConfigureAwait(false);
                var hop = Hop(route, client);
                var tls = hop.Tls is null ? "" : $" over {hop.Tls}";
                var peerDsn = client.Capabilities.HasFlag(SmtpCapabilities.Dsn);
                var results = recipients.Select(r => (r, (client.Refused.TryGetValue(r, out var reply)
                    ? Outcome(reply.Code, reply.Text)
                    : new DeliveryOutcome.Delivered($"{route.Address}:{route.Port}{tls}", peerDsn)) with
                { Via = hop })).ToList();
                Keep(route, client);
                return results;
            }
            catch (SmtpCommandException e) when (reused && attempt == 0 && e.StatusCode == SmtpStatusCode.ServiceNotAvailable)
            {
                // A kept connection the server timed out: its 421 was waiting for our next command.
                await CloseAsync(client).ConfigureAwait(false);
            }
            catch (SmtpCommandException e) when (!greeted && e.StatusCode == SmtpStatusCode.ServiceNotAvailable)
            {
                // 421 instead of a greeting: no more connections from us for now (a per-address limit).
                var crowded = All(new DeliveryOutcome.Deferred($"421 {e.Message} (at the greeting of a new connection)") { Crowded = true });
                await CloseAsync(client).ConfigureAwait(false);
                return crowded;
            }
            catch (SmtpCommandException e)
            {
                // MAIL FROM or DATA refused (or every RCPT): the reply decides for all that were not refused alone.
                var reply = Outcome((int)e.StatusCode, e.Message);
                var results = recipients.Select(r => (r, (client.Refused.TryGetValue(r, out var own) ? Outcome(own.Code, own.Text) : reply) with { Via = Hop(route, client) })).ToList();
                await CloseAsync(client).ConfigureAwait(false);
                return results;
            }
            catch (AuthenticationException e)
            {
                var failed = All(new DeliveryOutcome.Deferred($"{server} refused the credentials of user '{route.Username}' ({e.Message}): check Relay.Smarthost.Username and the password in Relay.Smarthost.PasswordFile"));
                await CloseAsync(client).ConfigureAwait(false);
                return failed;
            }
            catch (NotSupportedException e)
            {
                // MailKit's words for "no STARTTLS" or "no AUTH" when the route requires them.
                var failed = All(new DeliveryOutcome.Deferred($"{server}: {e.Message}"));
                await CloseAsync(client).ConfigureAwait(false);
                return failed;
            }
            catch (Exception e) when (reused && attempt == 0 && e is SocketException or IOException or SmtpProtocolException or ServiceNotConnectedException)
            {
                // The server closed the kept connection meanwhile: open a new one.
                await CloseAsync(client).ConfigureAwait(false);
            }
            catch (SslHandshakeException e) when (route.VerifyCertificate)
            {
                var failed = All(new DeliveryOutcome.Deferred($"{server}: TLS certificate not accepted ({FirstLine(e.Message)}); fix the certificate or set Relay.Smarthost.VerifyCertificate to false"));
                await CloseAsync(client).ConfigureAwait(false);
                return failed;
            }
            catch (Exception e) when (e is SocketException or IOException or SmtpProtocolException or SslHandshakeException or ServiceNotConnectedException or OperationCanceledException or TimeoutException)
            {
                var failed = All(new DeliveryOutcome.Deferred($"{server}: {FirstLine(e.Message)}"));
                await CloseAsync(client).ConfigureAwait(false);
                return failed;
            }
        }
    }

    /// <summary>
    /// DKIM signatures for a message a local user submitted (the envelope names the user), made with
    /// the From domain's keys in DATA/dkim; empty when there is no key or nothing to sign.
    /// </summary>
    private async Task<string> SignAsync(SpooledMessage message, CancellationToken cancellationToken)
    {
        if (_signer is null || message.Envelope.AuthUser is null)
        {
            return "";
        }
        try
        {
            await using var content = Spool.OpenMessage(message);
            return await _signer.SignAsync(content, null, cancellationToken).ConfigureAwait(false);
        }
        catch (Postern.MailAuth.Dkim.DkimSigningException)
        {
            return ""; // no From, or several: sent unsigned, as the receiver would judge it anyway
        }
    }

    internal static string FirstLine(string s) => s.Split('\n', 2)[0].Trim();

    private static Hop Hop(SmtpRoute route, EnvelopeSmtpClient client) =>
        new(route.Host, route.Address, route.Port, client.IsConnected && client.IsSecure ? Postern.Server.Logging.TlsNames.Version(client.SslProtocol) : null);

    /// <summary>A refusal's outcome, for SMTP and LMTP alike: 5xx bounces with the server's words, anything else defers.</summary>
    internal static DeliveryOutcome Outcome(int code, string text) =>
        code >= 500 ? new DeliveryOutcome.Bounced($"{code} {text}") : new DeliveryOutcome.Deferred($"{code} {text}");

    private EnvelopeSmtpClient NewClient(SmtpRoute route)
    {
        var client = new EnvelopeSmtpClient { LocalDomain = _hostname, Timeout = (int)_timeout.TotalMilliseconds };
        if (_bind.FirstOrDefault(a => a.AddressFamily == route.Address.AddressFamily) is { } local)
        {
            client.LocalEndPoint = new IPEndPoint(local, 0);
        }
        if (!route.VerifyCertificate)
        {
            // RFC 7435: opportunistic TLS does not authenticate the peer; refusing a self-signed or
            // mismatched certificate would only push the mail to plaintext.
            client.ServerCertificateValidationCallback = (_, _, _, _) => true;
        }
        return client;
    }

    private EnvelopeSmtpClient? TakeIdle(SmtpRoute route)
    {
        var now = _time.GetUtcNow();
        lock (_idle)
        {
            if (!_idle.TryGetValue(route.CacheKey, out var stack))
            {
                return null;
            }
            while (stack.TryPop(out var kept))
            {
                if (now - kept.Since < IdleTime && kept.Client.IsConnected)
                {
                    return kept.Client;
                }
                _ = CloseAsync(kept.Client);
            }
            _idle.Remove(route.CacheKey);
            return null;
        }
    }

    private void Keep(SmtpRoute route, EnvelopeSmtpClient client)
    {
        lock (_idle)
        {
            if (!_disposed && client.IsConnected)
            {
                if (!_idle.TryGetValue(route.CacheKey, out var stack))
                {
                    _idle[route.CacheKey] = stack = new();
                }
                if (stack.Count < MaxIdlePerServer)
                {
                    stack.Push((client, _time.GetUtcNow()));
                    return;
                }
            }
        }
        _ = CloseAsync(client);
    }

    /// <summary>Says QUIT to connections idle for longer than <see cref="IdleTime"/>.</summary>
    private void Sweep()
    {
        var now = _time.GetUtcNow();
        var expired = new List<EnvelopeSmtpClient>();
        lock (_idle)
        {
            foreach (var (key, stack) in _idle.ToList())
            {
                var keep = stack.Where(k => now - k.Since < IdleTime).Reverse().ToList();
                expired.AddRange(stack.Where(k => now - k.Since >= IdleTime).Select(k => k.Client));
                if (keep.Count == 0)
                {
                    _idle.Remove(key);
                }
                else
                {
                    _idle[key] = new Stack<(EnvelopeSmtpClient, DateTimeOffset)>(keep);
                }
            }
        }
        expired.ForEach(c => _ = CloseAsync(c));
    }

    private static async Task CloseAsync(SmtpClient client)
    {
        try
        {
            if (client.IsConnected)
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await client.DisconnectAsync(true, cts.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or SmtpProtocolException or SmtpCommandException or OperationCanceledException or ServiceNotConnectedException)
        {
            // The connection is being dropped anyway.
        }
        finally
        {
            client.Dispose();
        }
    }

    /// <summary>Closes every kept connection with QUIT.</summary>
    public async ValueTask DisposeAsync()
    {
        List<EnvelopeSmtpClient> all;
        lock (_idle)
        {
            _disposed = true;
            all = _idle.Values.SelectMany(s => s.Select(k => k.Client)).ToList();
            _idle.Clear();
        }
        await _sweeper.DisposeAsync().ConfigureAwait(false);
        await Task.WhenAll(all.Select(CloseAsync)).ConfigureAwait(false);
    }

    /// <summary>MailKit's client, told each envelope's DSN parameters and keeping refused recipients instead of throwing.</summary>
    private sealed class EnvelopeSmtpClient : SmtpClient
    {
        private Queue.Envelope? _envelope;

        public Dictionary<string, (int Code, string Text)> Refused { get; } = new(StringComparer.OrdinalIgnoreCase);

        public void Begin(Queue.Envelope envelope)
        {
            _envelope = envelope;
            Refused.Clear();
        }

        protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response) =>
            Refused[mailbox.Address] = ((int)response.StatusCode, response.Response);

        protected override string? GetEnvelopeId(MimeMessage message) => _envelope?.EnvId;

        protected override DeliveryStatusNotification? GetDeliveryStatusNotifications(MimeMessage message, MailboxAddress mailbox)
        {
            var text = _envelope?.Recipients.FirstOrDefault(r => r.Address.Equals(mailbox.Address, StringComparison.OrdinalIgnoreCase))?.Notify;
            if (!Postern.Protocol.Commands.CommandParser.TryParseNotify(text, out var notify))
            {
                return null;
            }
            // The same RFC 3461 words, in MailKit's flags.
            var result = (DeliveryStatusNotification)0;
            result |= notify.HasFlag(Postern.Protocol.Commands.DsnNotify.Never) ? DeliveryStatusNotification.Never : 0;
            result |= notify.HasFlag(Postern.Protocol.Commands.DsnNotify.Success) ? DeliveryStatusNotification.Success : 0;
            result |= notify.HasFlag(Postern.Protocol.Commands.DsnNotify.Failure) ? DeliveryStatusNotification.Failure : 0;
            result |= notify.HasFlag(Postern.Protocol.Commands.DsnNotify.Delay) ? DeliveryStatusNotification.Delay : 0;
            return result;
        }
    }
}
