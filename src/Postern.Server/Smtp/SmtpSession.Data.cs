using System.Buffers;
using System.Globalization;
using Postern.Protocol.Commands;
using Postern.Protocol.Parsing;
using Postern.Protocol.Replies;
using Postern.Server.Configuration;
using Postern.Server.Logging;
using Postern.Server.Queue;

namespace Postern.Server.Smtp;

public sealed partial class SmtpSession
{
    /// <summary>
    /// DATA (RFC 5321 §4.1.1.4): the content streams through the <see cref="DataReader"/> into the
    /// spool file. A bare CR or LF refuses the message and closes the connection (SPEC §5); every
    /// other problem is answered after the real end of the data, so the dialogue stays in step.
    /// </summary>
    private async Task DataAsync()
    {
        var t = _transaction!;
        if (!BeginMessage(t))
        {
            return;
        }
        Send(Reply.StartData);
        await FlushAsync();
        var data = new DataReader(Options.Limits.MaxMessageSize);
        IBufferWriter<byte> sink = t.Headers!;
        while (true)
        {
            var (kind, due) = DataDeadline(t.DataStarted, data.Size);
            var result = await ReadAsync(kind, due);
            var status = data.Read(result.Buffer, sink, out var consumed);
            _reader.AdvanceTo(consumed, status == DataStatus.NeedMore ? result.Buffer.End : consumed);
            _needMoreInput = status == DataStatus.NeedMore;
            if (status == DataStatus.BareLineEnding)
            {
                RefuseContentAndClose("DATA");
                return;
            }
            if (status == DataStatus.Complete)
            {
                break;
            }
            if (result.IsCompleted)
            {
                throw new IOException("client closed the connection during DATA");
            }
        }
        await FinishMessageAsync(t, data.Size, ContentRefusal(data, t.Headers!, t.Mime!));
    }

    /// <summary>
    /// The deadline of the next read of message data: Limits.DataTimeout, but never past the
    /// deadline the minimum data rate sets (DataTimeout, plus one second per Limits.MinDataRate
    /// octets received), so that a client trickling a few octets at a time (slowloris) cannot hold
    /// a session for ever. Passing the deadline ends the session as a data timeout does. Data that
    /// is still arriving when Limits.SessionLifetime passes gets at most DataTimeout more: the hard
    /// bound of a session is SessionLifetime + DataTimeout.
    /// </summary>
    private (Deadline Kind, DateTimeOffset Due) DataDeadline(DateTimeOffset started, long octets)
    {
        var timeout = Options.Limits.DataTimeout;
        var plain = _ctx.Time.GetUtcNow() + timeout;
        var hardEnd = _timeouts.SessionEnd + timeout;
        var rate = Options.Limits.MinDataRate <= 0 ? hardEnd
            : started + timeout + TimeSpan.FromSeconds((double)octets / Options.Limits.MinDataRate);
        var slow = rate < hardEnd ? rate : hardEnd;
        return slow < plain ? (Deadline.DataRate, slow) : (Deadline.Data, plain);
    }

    private static readonly SmtpReply NulInContent = Reply.TextLineTooLong.WithText("Message content has a NUL character");

    /// <summary>The refusal (and its log reason) for content that broke a rule, or null when it may be committed.</summary>
    private (SmtpReply Reply, RefusalReason Reason)? ContentRefusal(ContentReader content, HeaderGuard headers, MimeStructureGuard mime) =>
        content.TooBig ? (Reply.MessageTooBig, RefusalReason.TooBig)
        : content.LineTooLong ? (Reply.TextLineTooLong, RefusalReason.LineTooLong)
        : content.HasNul ? (NulInContent, RefusalReason.BadContent)
        : headers.HeaderBytes > Options.Limits.MaxHeaderSize ? (Reply.HeaderTooLarge, RefusalReason.TooBig)
        : headers.Fields > Options.Limits.MaxHeaderFields ? (Reply.TooManyHeaderFields, RefusalReason.TooBig)
        : headers.Hops > Options.Limits.MaxHops ? (Reply.TooManyHops, RefusalReason.TooManyHops)
        : mime.TooManyParts ? (Reply.TooManyMimeParts.WithText($"Message has more than {Options.Limits.MaxMimeParts} MIME parts"), RefusalReason.MimeStructure)
        : mime.TooDeep ? (Reply.MimeTooDeep.WithText($"Message MIME structure is nested deeper than {Options.Limits.MaxMimeDepth} levels"), RefusalReason.MimeStructure)
        : null;

    /// <summary>Opens the spool file and writes the Received header; false (with the reply sent) if the disk refuses.</summary>
    private bool BeginMessage(Transaction t)
    {
        var envelope = new Envelope
        {
            Id = t.Id.Value,
            Received = _ctx.Time.GetUtcNow(),
            From = t.Mail.From.ToString(),
            Body = t.Mail.Body == BodyType.EightBitMime ? "8BITMIME" : "7BIT",
            SmtpUtf8 = t.Mail.SmtpUtf8,
            Ret = t.Mail.Ret switch { DsnReturn.Full => "FULL", DsnReturn.Headers => "HDRS", _ => null },
            EnvId = t.Mail.EnvId,
            AuthUser = _user,
            ClientIp = Ip,
            Helo = _helo ?? "",
            Listener = _listener.Name,
            Protocol = ProtocolName(t),
            Recipients = t.Recipients,
            AuthenticationResults = t.AuthResults.Count == 0 ? null : Postern.MailAuth.AuthenticationResults.AuthenticationResultsHeader.Format(Options.Hostname, t.AuthResults),
        };
        try
        {
            // Room for the Authentication-Results field, known only at the end of the data.
            t.Writer = _ctx.Spool.Create(envelope, room: t.Spf is null ? 0 : 4096);
            t.Envelope = envelope;
            t.Writer.WriteText(ReceivedHeader(t, envelope.Received));
        }
        catch (IOException e)
        {
            t.Abort();
            Log.CommitFailed(_ctx.Logger, t.Id.Value, _id, e.Message);
            Refuse("DATA", Reply.DiskFull, RefusalReason.DiskFull, e.Message);
            ResetTransaction();
            return false;
        }
        if (_listener.Role != ListenerRole.Mx)
        {
            var now = envelope.Received;
            t.Fixup = new HeaderFixup(t.Writer,
                () => $"<{t.Id.Value}.{now.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)}@{Options.Hostname}>",
                () => FormatDate(now));
        }
        IBufferWriter<byte> target = (IBufferWriter<byte>?)t.Fixup ?? t.Writer;
        if (t.Spf is not null)
        {
            // RFC 8601 §5: a field that claims our authserv-id came from the sender, not from us.
            target = t.Filter = new HeaderFieldFilter(target, "Authentication-Results",
                field => Postern.MailAuth.AuthenticationResults.AuthenticationResultsHeader.ClaimsToBe(FieldValue(field.Span), Options.Hostname));
        }
        // MIME structure is counted as the data streams (issue 12: a MIME bomb), never parsed whole.
        t.Mime = new MimeStructureGuard(target, Options.Limits.MaxMimeParts, Options.Limits.MaxMimeDepth);
        t.Headers = new HeaderGuard(t.Mime);
        t.DataStarted = _ctx.Time.GetUtcNow();
        return true;
    }

    /// <summary>Commits, or refuses, the message whose content has been read to its end.</summary>
    private async Task FinishMessageAsync(Transaction t, long size, (SmtpReply Reply, RefusalReason Reason)? refusal)
    {
        if (refusal is { } r)
        {
            Refuse(t.Bdat is null ? "DATA" : "BDAT", r.Reply, r.Reason, $"{r.Reply.Text} (size {size})");
            ResetTransaction();
            return;
        }
        t.Filter?.Complete();
        t.Fixup?.Complete();
        var writer = t.Writer!;
        if (writer.Failure is { } failed)
        {
            // The disk refused a write while the data streamed in (the rest was read and dropped, so
            // the dialogue is in step): 452 4.3.1 now, before anything reads the broken file back.
            StorageRefused(t, failed);
            return;
        }
        try
        {
            if (t.Spf is not null && !await AuthenticateAsync(t, writer))
            {
                return;
            }
        }
        catch (IOException e)
        {
            StorageRefused(t, e);
            return;
        }
        try
        {
            if (_user is not null && !await HeaderSendersOwnedAsync(t, writer))
            {
                return;
            }
        }
        catch (IOException e)
        {
            StorageRefused(t, e);
            return;
        }
        try
        {
            await writer.CommitAsync();
        }
        catch (IOException e)
        {
            t.Writer = null;
            StorageRefused(t, e);
            return;
        }
        t.Writer = null;
        _messages++;
        _recipients += t.Recipients.Count;
        Log.Accepted(_ctx.Logger, t.Id.Value, _id, Ip, t.Mail.From.ToString(), t.Recipients.Count, size, _user, ProtocolName(t));
        if (t.Quarantine is { } why)
        {
            // Accepted, but filed as junk: a line of its own, so a quarantine is never silent.
            Log.Quarantined(_ctx.Logger, t.Id.Value, _id, Ip, RefusalReason.Dmarc.Word(), t.Envelope!.Folder ?? "", why);
        }
        Metrics.MessagesAccepted.Add(1, new KeyValuePair<string, object?>("listener", _listener.Name));
        Metrics.BytesAccepted.Add(size, new KeyValuePair<string, object?>("listener", _listener.Name));
        Send(Reply.Queued(t.Id.Value));
        _transaction = null;
        _engine.MessageAccepted();
        _engine.ResetTransaction();
        _ctx.Committed(new SpooledMessage(t.Id, t.Envelope!, _ctx.Spool.MessagePath(t.Id), writer.MessageStart, writer.Length - writer.MessageStart));
    }

    /// <summary>The storage refused (full disk, failed write or fsync): 452 4.3.1, nothing acknowledged, the session goes on.</summary>
    private void StorageRefused(Transaction t, IOException e)
    {
        t.Abort();
        Log.CommitFailed(_ctx.Logger, t.Id.Value, _id, e.Message);
        Refuse(t.Bdat is null ? "DATA" : "BDAT", Reply.DiskFull, RefusalReason.DiskFull, e.Message);
        ResetTransaction();
    }

    private void RefuseContentAndClose(string command)
    {
        Refuse(command, Reply.BareLineEndingInData, RefusalReason.BareLineEnding);
        ResetTransaction();
        _closing = true;
        _closeReason = "bare CR or LF in content";
    }

    /// <summary>RFC 3848 (and RFC 6531 §3.7.3 for UTF8SMTP): how the message came in.</summary>
    private string ProtocolName(Transaction t)
    {
        var name = t.Mail.SmtpUtf8 ? "UTF8SMTP" : _extended ? "ESMTP" : "SMTP";
        if (IsTls)
        {
            name += "S";
        }
        if (_user is not null)
        {
            name += "A";
        }
        return name == "SMTPS" ? "ESMTPS" : name;
    }

    /// <summary>RFC 5321 §4.4 trace field, with the TLS version and cipher when there is TLS.</summary>
    private string ReceivedHeader(Transaction t, DateTimeOffset when)
    {
        var tls = _tls is null ? "" : $"\r\n\t(version={TlsNames.Version(_tls.SslProtocol)} cipher={_tls.NegotiatedCipherSuite})";
        var forClause = t.Recipients.Count == 1 ? $"\r\n\tfor <{t.Recipients[0].Address}>" : "";
        var helo = SanitizeHelo(_helo ?? "unknown");
        return $"Received: from {helo} ([{Ip}])\r\n\tby {Options.Hostname} (Postern) with {ProtocolName(t)} id {t.Id.Value}{tls}{forClause};\r\n\t{FormatDate(when)}\r\n";
    }

    private static string SanitizeHelo(string helo) =>
        new(helo.Select(c => c is '(' or ')' or ';' or '\\' or '"' ? '_' : c).ToArray());

    /// <summary>RFC 5322 §3.3 date-time.</summary>
    internal static string FormatDate(DateTimeOffset d) =>
        d.ToString("ddd, dd MMM yyyy HH:mm:ss ", CultureInfo.InvariantCulture) + d.ToString("zzz", CultureInfo.InvariantCulture).Replace(":", "", StringComparison.Ordinal);

    private static string FieldValue(ReadOnlySpan<byte> field)
    {
        var colon = field.IndexOf((byte)':');
        return System.Text.Encoding.UTF8.GetString(colon < 0 ? field : field[(colon + 1)..]);
    }
}
