using System.Net;
using System.Net.Sockets;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Postern.Server.Queue;

namespace Postern.Server.Delivery;

/// <summary>
/// Hands one spooled message to one remote server with MailKit's SmtpClient and says what became of
/// each recipient. Opportunistic STARTTLS (RFC 7435: encrypt when offered, certificate not checked),
/// EHLO with our host name, SIZE checked before sending, SMTPUTF8 respected, DSN parameters passed on
/// when the peer offers DSN. 4xx and connection trouble defer; 5xx bounce with the peer's own reply.
/// </summary>
public sealed class SmtpDeliveryClient(string hostname, TimeProvider time, TimeSpan? timeout = null)
{
    private static readonly TimeSpan RetryAfter = TimeSpan.FromMinutes(5);
    private readonly TimeSpan _timeout = timeout ?? TimeSpan.FromMinutes(5);

    /// <summary>The outcome for each recipient, in the order given.</summary>
    public async Task<IReadOnlyList<(string Recipient, DeliveryOutcome Outcome)>> DeliverAsync(
        SpooledMessage message, IReadOnlyList<string> recipients, IPAddress address, int port, CancellationToken cancellationToken = default)
    {
        var retryAt = time.GetUtcNow() + RetryAfter;
        List<(string, DeliveryOutcome)> All(DeliveryOutcome o) => recipients.Select(r => (r, o)).ToList();
        MimeMessage mime;
        await using (var content = Spool.OpenMessage(message))
        {
            mime = await MimeMessage.LoadAsync(content, cancellationToken).ConfigureAwait(false);
        }
        using var client = new EnvelopeSmtpClient(message.Envelope) { LocalDomain = hostname, Timeout = (int)_timeout.TotalMilliseconds };
        // RFC 7435: opportunistic TLS does not authenticate the peer; refusing a self-signed or
        // mismatched certificate would only push the mail to plaintext.
        client.ServerCertificateValidationCallback = (_, _, _, _) => true;
        try
        {
            await client.ConnectAsync(address.ToString(), port, SecureSocketOptions.StartTlsWhenAvailable, cancellationToken).ConfigureAwait(false);
            if (client.Capabilities.HasFlag(SmtpCapabilities.Size) && client.MaxSize > 0 && message.MessageLength > client.MaxSize)
            {
                return All(new DeliveryOutcome.Bounced($"552 5.3.4 Message too big for the receiving server ({message.MessageLength} > {client.MaxSize} octets)"));
            }
            if (message.Envelope.SmtpUtf8 && !client.Capabilities.HasFlag(SmtpCapabilities.UTF8))
            {
                return All(new DeliveryOutcome.Bounced("553 5.6.7 The receiving server does not support SMTPUTF8, which this message needs"));
            }
            var sender = message.Envelope.From.Length == 0 ? null : MailboxAddress.Parse(message.Envelope.From);
            var options = FormatOptions.Default.Clone();
            options.NewLineFormat = NewLineFormat.Dos;
            options.International = message.Envelope.SmtpUtf8;
            await client.SendAsync(options, mime, sender ?? new MailboxAddress("", ""), recipients.Select(r => MailboxAddress.Parse(r)), cancellationToken).ConfigureAwait(false);
            var tls = client.IsSecure ? $" over {client.SslProtocol}" : "";
            var peerDsn = client.Capabilities.HasFlag(SmtpCapabilities.Dsn);
            await client.DisconnectAsync(true, cancellationToken).ConfigureAwait(false);
            return recipients.Select(r => (r, client.Refused.TryGetValue(r, out var reply)
                ? Outcome(reply.Code, reply.Text, retryAt)
                : (DeliveryOutcome)new DeliveryOutcome.Delivered($"{address}:{port}{tls}", peerDsn))).ToList();
        }
        catch (SmtpCommandException e)
        {
            // MAIL FROM or DATA refused (or every RCPT): the reply decides for all that were not refused alone.
            var reply = Outcome((int)e.StatusCode, e.Message, retryAt);
            return recipients.Select(r => (r, client.Refused.TryGetValue(r, out var own) ? Outcome(own.Code, own.Text, retryAt) : reply)).ToList();
        }
        catch (Exception e) when (e is SocketException or IOException or SmtpProtocolException or SslHandshakeException or OperationCanceledException or TimeoutException)
        {
            return All(new DeliveryOutcome.Deferred($"{address}:{port}: {e.Message}", retryAt));
        }
    }

    private static DeliveryOutcome Outcome(int code, string text, DateTimeOffset retryAt) =>
        code >= 500 ? new DeliveryOutcome.Bounced($"{code} {text}") : new DeliveryOutcome.Deferred($"{code} {text}", retryAt);

    /// <summary>MailKit's client, told the envelope's DSN parameters and keeping refused recipients instead of throwing.</summary>
    private sealed class EnvelopeSmtpClient(Queue.Envelope envelope) : SmtpClient
    {
        public Dictionary<string, (int Code, string Text)> Refused { get; } = new(StringComparer.OrdinalIgnoreCase);

        protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response) =>
            Refused[mailbox.Address] = ((int)response.StatusCode, response.Response);

        protected override string? GetEnvelopeId(MimeMessage message) => envelope.EnvId;

        protected override DeliveryStatusNotification? GetDeliveryStatusNotifications(MimeMessage message, MailboxAddress mailbox)
        {
            var text = envelope.Recipients.FirstOrDefault(r => r.Address.Equals(mailbox.Address, StringComparison.OrdinalIgnoreCase))?.Notify;
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
