using System.Text;
using MimeKit;
using MimeKit.Utils;
using Postern.Protocol.Addresses;
using Postern.Protocol.Commands;
using Postern.Server.Accounts;
using Postern.Server.Queue;

namespace Postern.Server.Delivery;

/// <summary>What a notification reports (RFC 3464 §2.3.3 Action), with the NOTIFY word that asks for it.</summary>
public enum DsnAction
{
    Failed,
    Delayed,
    Delivered,
    Relayed,
}

/// <summary>
/// Writes the delivery status notification for recipients that failed (RFC 3464 multipart/report,
/// RFC 3461 NOTIFY and RET honoured) and queues it like any message: from the null sender, to the
/// original envelope sender. Never to &lt;&gt;: a message that had no sender (itself a bounce) is
/// reported to the postmaster instead, and a failure of that report is not reported again.
/// </summary>
/// <remarks>The postmaster's domain (the first of Domains) and Delivery.MaxQueueLifetime are those in force when a report is written.</remarks>
/// <remarks>
/// Backscatter (docs/security.md): a sender nobody vouches for (not authenticated, not local, not
/// from Relay.TrustedNetworks, which <paramref name="trusted"/> tells by client address) may be
/// forged, so it gets failure reports only, never success or delay reports, whatever its NOTIFY
/// says (RFC 3461 §5.2 leaves a relay that does not pass the request on free to treat it as it
/// sees fit); and the failure of a copy an alias forwarded elsewhere returns the headers only, and
/// no report at all when SPF failed for the sender (it is then most likely forged).
/// </remarks>
public sealed class BounceWriter(Spool spool, AddressBook addressBook, string hostname, Func<string> postmasterDomain, Func<TimeSpan> maxLifetime, TimeProvider time,
    Func<System.Net.IPAddress, bool>? trusted = null)
{
    private const int MaxReturnedOctets = 256 * 1024;

    /// <summary>Queues the DSN; returns it (for delivery) or null when none is due.</summary>
    public async Task<SpooledMessage?> CreateAsync(SpooledMessage original, IReadOnlyList<RecipientState> failed, DsnAction action = DsnAction.Failed)
    {
        var envelope = original.Envelope;
        // RFC 3461 §4.1: NOTIFY given without the word for this report (or NEVER) asks for none; without
        // NOTIFY, failures and delays are reported and successes are not.
        var asked = action switch { DsnAction.Failed => DsnNotify.Failure, DsnAction.Delayed => DsnNotify.Delay, _ => DsnNotify.Success };
        var wanted = failed.Where(r => CommandParser.TryParseNotify(Notify(envelope, r), out var notify)
            ? notify.HasFlag(asked)
            : action is DsnAction.Failed or DsnAction.Delayed).ToList();
        var vouched = Vouched(envelope);
        if (!vouched && action != DsnAction.Failed)
        {
            wanted.Clear(); // no success or delay report to a sender that may be forged
        }
        var forwarded = wanted.Any(r => r.Original is not null && !r.Local);
        if (!vouched && forwarded && (envelope.AuthenticationResults ?? "").Contains("spf=fail", StringComparison.Ordinal))
        {
            wanted.RemoveAll(r => r.Original is not null && !r.Local); // SPF says the sender is forged: no backscatter
        }
        if (wanted.Count == 0)
        {
            return null;
        }
        string to;
        if (envelope.From.Length > 0)
        {
            to = envelope.From;
        }
        else if (envelope.Recipients.Any(r => r.Address.StartsWith("postmaster@", StringComparison.OrdinalIgnoreCase)))
        {
            return null; // a report about a report to the postmaster: stop here, never loop
        }
        else
        {
            to = $"postmaster@{postmasterDomain()}";
        }
        var now = time.GetUtcNow();
        var report = new MultipartReport("delivery-status");
        report.Add(new TextPart("plain")
        {
            Text = $"This is the mail system at {hostname}.\n\n" + action switch
            {
                DsnAction.Failed => "Your message could not be delivered to ",
                DsnAction.Delayed => "Your message has not been delivered yet to ",
                DsnAction.Delivered => "Your message was delivered to ",
                _ => "Your message was passed on, to a server that will not confirm its delivery, for ",
            }
                + (wanted.Count == 1 ? "one recipient" : $"{wanted.Count} recipients") + ":\n\n"
                + string.Concat(wanted.Select(r => action is DsnAction.Failed or DsnAction.Delayed ? $"  <{r.Address}>: {r.Detail}\n" : $"  <{r.Address}>\n"))
                + (action == DsnAction.Delayed ? $"\nIt stays queued and is retried; no action is needed yet.\n" : ""),
        });
        var status = new MessageDeliveryStatus();
        var perMessage = new HeaderList { { "Reporting-MTA", $"dns; {hostname}" }, { "Arrival-Date", DateUtils.FormatDate(envelope.Received) } };
        if (envelope.EnvId is not null)
        {
            perMessage.Add("Original-Envelope-Id", envelope.EnvId);
        }
        status.StatusGroups.Add(perMessage);
        foreach (var r in wanted)
        {
            var group = new HeaderList();
            var orcpt = envelope.Recipients.FirstOrDefault(e => e.Address.Equals(r.Original ?? r.Address, StringComparison.OrdinalIgnoreCase))?.ORcpt;
            if (orcpt is not null)
            {
                group.Add("Original-Recipient", orcpt);
            }
            group.Add("Final-Recipient", $"rfc822; {r.Address}");
            group.Add("Action", action.ToString().ToLowerInvariant());
            group.Add("Status", action is DsnAction.Failed or DsnAction.Delayed ? StatusCode(r.Detail, action) : "2.0.0");
            if (action != DsnAction.Delivered && r.Detail is { } detail && detail.Length > 3 && char.IsAsciiDigit(detail[0]) && detail[3] == ' ')
            {
                group.Add("Diagnostic-Code", $"smtp; {detail}");
            }
            group.Add("Last-Attempt-Date", DateUtils.FormatDate(r.LastAttempt ?? now));
            if (action == DsnAction.Delayed)
            {
                group.Add("Will-Retry-Until", DateUtils.FormatDate(envelope.Received + maxLifetime()));
            }
            status.StatusGroups.Add(group);
        }
        report.Add(status);
        await using (var content = Spool.OpenMessage(original))
        {
            // RFC 3461 §4.3: RET=HDRS returns the headers only; so does a message too large to return.
            // Reports that are not failures carry the headers only (RFC 3461 §4.3 leaves it to us).
            // A forwarded copy refused elsewhere, from a sender nobody vouches for: the headers only.
            var headersOnly = envelope.Ret == "HDRS" || action != DsnAction.Failed || original.MessageLength > MaxReturnedOctets || (!vouched && forwarded);
            var returned = await MimeMessage.LoadAsync(content).ConfigureAwait(false);
            if (headersOnly)
            {
                using var headers = new MemoryStream();
                returned.Headers.WriteTo(headers);
                report.Add(new MimePart("text", "rfc822-headers") { Content = new MimeContent(new MemoryStream(headers.ToArray())) });
            }
            else
            {
                report.Add(new MessagePart { Message = returned });
            }
        }
        var id = QueueId.New(now);
        var dsn = new MimeMessage();
        dsn.From.Add(new MailboxAddress("Mail Delivery System", $"MAILER-DAEMON@{hostname}"));
        dsn.To.Add(MailboxAddress.Parse(to));
        dsn.Subject = action switch
        {
            DsnAction.Failed => "Undelivered Mail Returned to Sender",
            DsnAction.Delayed => "Delayed Mail (still being retried)",
            _ => "Successful Mail Delivery Report",
        };
        dsn.Date = now;
        dsn.MessageId = $"{id.Value}.{now.ToUnixTimeMilliseconds()}@{hostname}";
        dsn.Headers.Add("Auto-Submitted", "auto-replied"); // RFC 3834: no automatic reply to this
        dsn.Body = report;

        var local = AddressParser.TryParseMailbox(to, true, out var mailbox) == AddressError.None
                    && mailbox is not null && addressBook.Classify(mailbox) == RecipientKind.Local;
        var dsnEnvelope = new Envelope
        {
            Id = id.Value,
            Received = now,
            From = "",
            Body = "8BITMIME",
            SmtpUtf8 = envelope.SmtpUtf8,
            ClientIp = "127.0.0.1",
            Helo = hostname,
            Listener = "bounce",
            Protocol = "local",
            Recipients = [new EnvelopeRecipient { Address = to, Local = local }],
        };
        using var writer = spool.Create(dsnEnvelope);
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        using (var buffer = new MemoryStream())
        {
            await dsn.WriteToAsync(options, buffer).ConfigureAwait(false);
            System.Buffers.BuffersExtensions.Write(writer, buffer.ToArray());
        }
        var start = writer.MessageStart;
        var length = writer.Length - start;
        await writer.CommitAsync().ConfigureAwait(false);
        return new SpooledMessage(id, dsnEnvelope, spool.MessagePath(id), start, length);
    }

    /// <summary>Whether someone vouches for the sender: authenticated, local (sendmail, our own reports) or from Relay.TrustedNetworks.</summary>
    private bool Vouched(Envelope e) =>
        e.AuthUser is not null || e.Protocol == "local"
        || (trusted is not null && System.Net.IPAddress.TryParse(e.ClientIp, out var ip) && trusted(ip));

    private static string? Notify(Envelope envelope, RecipientState r) =>
        envelope.Recipients.FirstOrDefault(e => e.Address.Equals(r.Original ?? r.Address, StringComparison.OrdinalIgnoreCase))?.Notify;

    /// <summary>The RFC 3463 code in the reply ("550 5.1.1 ..." gives 5.1.1), else a generic permanent failure.</summary>
    private static string StatusCode(string? detail, DsnAction action)
    {
        if (action == DsnAction.Delayed && !(detail ?? "").Contains(" 4.", StringComparison.Ordinal))
        {
            return "4.0.0";
        }
        foreach (var word in (detail ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries).Take(3))
        {
            var parts = word.Split('.');
            if (parts.Length == 3 && parts.All(p => p.Length is > 0 and <= 3 && p.All(char.IsAsciiDigit)) && parts[0] is "5" or "4")
            {
                return word; // an expired temporary error keeps its code (4.4.7), as RFC 3463 defines it
            }
        }
        return action == DsnAction.Delayed ? "4.0.0" : "5.0.0";
    }
}
