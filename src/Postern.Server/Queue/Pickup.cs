using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Postern.Protocol.Addresses;
using Postern.Server.Accounts;
using Postern.Server.Configuration;
using Postern.Server.Logging;
using Postern.Server.Storage;

namespace Postern.Server.Queue;

/// <summary>
/// The server's side of DATA/maildrop/ (docs/queue-format.md, docs/security.md): what `postern
/// sendmail` left there is queued like submitted mail, then the maildrop file is removed (at least
/// once: a crash in between may duplicate a message, never lose it). Files are noticed by a file
/// system watcher and by a scan every two seconds (as <see cref="QueueControl"/> does), and at start,
/// for what was dropped while no server ran. One file at a time, so that a flood costs time, not memory.
/// <para>
/// Who sent a file is its owner (set by the kernel, so it cannot be forged): the envelope sender is
/// NAME@Hostname, or the -f address when that user may use it (<see cref="MaySendAs"/>). A message
/// that may not go as asked is queued with every recipient failed, from the user's own address, so
/// that the user gets it back as a bounce. A file that is not a maildrop file (garbage, too big, a
/// link, not a regular file, an unknown owner) is moved to queue/corrupt/maildrop.NAME with a log line.
/// </para>
/// </summary>
public sealed class Pickup(string dataDirectory, Func<PosternOptions> inForce, Spool spool, AddressBook addressBook, ILogger logger, TimeProvider time, Action<SpooledMessage> committed)
{
    private static readonly TimeSpan ScanInterval = TimeSpan.FromSeconds(2);

    /// <summary>A temp file untouched this long was left by a `postern sendmail` that died; it is removed.</summary>
    public static readonly TimeSpan AbandonedAfter = TimeSpan.FromDays(1);

    private readonly HashSet<string> _failing = new(StringComparer.Ordinal);

    // The data directory needs a restart to change; what a file is judged by is the configuration in force (a reload applies).
    public string Directory { get; } = Maildrop.Ensure(dataDirectory);

    /// <summary>Picks up every file until <paramref name="stop"/> fires.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        await DirectoryWatch.RunAsync(
            Directory,
            "*",
            ScanInterval,
            token => ScanAsync(token),
            e => Log.PickupFailed(logger, "-", $"no file system watcher ({e.Message}); scanning every {ScanInterval.TotalSeconds:0} s"),
            stop).ConfigureAwait(false);
    }

    /// <summary>One pass over the directory. Returns how many messages were queued.</summary>
    public async Task<int> ScanAsync(CancellationToken stop = default)
    {
        var queued = 0;
        List<string> names;
        try
        {
            names = System.IO.Directory.EnumerateFiles(Directory).Select(Path.GetFileName).ToList()!;
        }
        catch (IOException e)
        {
            Log.PickupFailed(logger, "-", e.Message);
            return 0;
        }
        foreach (var name in names)
        {
            if (stop.IsCancellationRequested)
            {
                break;
            }
            try
            {
                if (await PickUpAsync(name).ConfigureAwait(false))
                {
                    queued++;
                }
                _failing.Remove(name);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The queue's disk refused (full?): the file stays and is tried again at the next scan.
                if (_failing.Add(name))
                {
                    Log.PickupFailed(logger, name, e.Message);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Anything else is the file's fault (a user may write it by hand): it is moved aside,
                // so that one file can never stop the pickup for everybody else.
                try
                {
                    MoveAside(name, null, $"could not be read as mail ({e.GetType().Name}: {Printable(e.Message)})");
                }
                catch (Exception again) when (again is IOException or UnauthorizedAccessException)
                {
                    if (_failing.Add(name))
                    {
                        Log.PickupFailed(logger, name, again.Message);
                    }
                }
            }
        }
        return queued;
    }

    /// <summary>Takes one file: true when a message was queued from it.</summary>
    private async Task<bool> PickUpAsync(string name)
    {
        var options = inForce();
        var path = Path.Combine(Directory, name);
        if (name.StartsWith(Maildrop.TempPrefix, StringComparison.Ordinal) && Maildrop.IsMessageName(name[Maildrop.TempPrefix.Length..]))
        {
            // Being written; or left by a sendmail that died long ago (never committed, so never acknowledged).
            if (File.GetLastWriteTimeUtc(path) < time.GetUtcNow().UtcDateTime - AbandonedAfter)
            {
                SafeFile.TryDelete(path);
            }
            return false;
        }
        if (!Maildrop.IsMessageName(name))
        {
            MoveAside(name, FileStatus.OfLink(path)?.Uid, "not a maildrop file name");
            return false;
        }
        using var handle = FileStatus.OpenNoFollow(path, out var errno, out var facts);
        if (handle is null)
        {
            if (errno == FileStatus.ENOENT)
            {
                return false;
            }
            MoveAside(name, FileStatus.OfLink(path)?.Uid, errno == FileStatus.ELOOP ? "a symbolic link" : $"cannot be opened (errno {errno})");
            return false;
        }
        if (!facts.IsRegular)
        {
            MoveAside(name, facts.Uid, "not a regular file");
            return false;
        }
        if (facts.Links != 1)
        {
            // A hard link to someone else's file would be read as if they had dropped it.
            MoveAside(name, facts.Uid, $"has {facts.Links} links");
            return false;
        }
        if (facts.Size > Maildrop.MaxHeaderLength + options.Limits.MaxMessageSize)
        {
            MoveAside(name, facts.Uid, $"too big ({facts.Size} octets; Limits.MaxMessageSize is {options.Limits.MaxMessageSize})");
            return false;
        }
        var user = UnixUser.ById(facts.Uid)?.Name;
        if (user is null)
        {
            MoveAside(name, facts.Uid, $"its owner uid {facts.Uid} has no user name");
            return false;
        }
        await using var file = new BufferedStream(new FileStream(handle, FileAccess.Read, 1), 64 * 1024);
        MaildropHeader header;
        try
        {
            header = Maildrop.ReadHeader(file);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
        {
            MoveAside(name, facts.Uid, e.Message);
            return false;
        }
        var messageLength = facts.Size - file.Position;
        if (messageLength > options.Limits.MaxMessageSize)
        {
            MoveAside(name, facts.Uid, $"message too big ({messageLength} octets; Limits.MaxMessageSize is {options.Limits.MaxMessageSize})");
            return false;
        }
        var own = $"{user}@{options.Hostname}";
        var submission = new LocalSubmission(options, user);
        var fields = submission.ReadHeader(file, messageLength);
        var refusal = submission.Refusal(fields);
        var from = own;
        if (header.From is { } asked)
        {
            var wanted = LocalSubmission.Qualify(asked, options.Hostname);
            // The file is the user's to write: the sender is checked here as at MAIL FROM (RFC 5321
            // §4.1.2), or a CR LF in it would become header lines above the server's own trace fields.
            if (wanted.Length > 0 && AddressParser.TryParseMailbox(wanted, true, out _) != AddressError.None)
            {
                refusal ??= $"553 5.1.7 Sender address <{Printable(wanted)}> is not a valid address";
            }
            else if (MaySendAs(options, facts.Uid, user, wanted, UnixUser.EffectiveUid))
            {
                from = wanted;
            }
            else
            {
                refusal ??= $"553 5.7.1 Sender address <{Printable(wanted)}> is not yours: only {own} (or {user}+tag@{options.Hostname}) unless {user} is in Sendmail.TrustedUsers";
            }
        }
        var recipients = new List<string>(header.Recipients.Select(r => LocalSubmission.Qualify(r, options.Hostname)));
        if (header.ExtractRecipients)
        {
            recipients.AddRange(fields.Recipients);
        }
        recipients = recipients.Where(r => r.Length > 0).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        if (recipients.Count == 0)
        {
            refusal ??= "554 5.5.1 No recipients: none on the command line" + (header.ExtractRecipients ? " nor in the To, Cc or Bcc fields (-t)" : " (or use -t)");
            recipients.Add(own);
        }
        if (recipients.Count > options.Limits.MaxRecipients)
        {
            refusal ??= $"552 5.5.3 Too many recipients ({recipients.Count}; Limits.MaxRecipients is {options.Limits.MaxRecipients})";
        }
        var now = time.GetUtcNow();
        var id = QueueId.New(now);
        var envelopeRecipients = new List<EnvelopeRecipient>();
        var failed = new List<RecipientState>();
        foreach (var r in recipients.Take(options.Limits.MaxRecipients))
        {
            var problem = refusal;
            var local = false;
            var address = r;
            if (AddressParser.TryParseMailbox(r, true, out var mailbox) != AddressError.None || mailbox is null)
            {
                // Kept only for the report to the user, with nothing in it that could break a line.
                address = Printable(r);
                problem ??= $"553 5.1.3 <{address}>: not a valid address";
            }
            else
            {
                var kind = addressBook.Classify(mailbox);
                local = kind == RecipientKind.Local;
                problem ??= kind switch
                {
                    RecipientKind.UnknownLocal => $"550 5.1.1 <{r}>: no such user here",
                    RecipientKind.AddressLiteral => $"550 5.1.2 <{r}>: address literals are not accepted",
                    _ => null,
                };
            }
            envelopeRecipients.Add(new EnvelopeRecipient { Address = address, Local = local });
            if (problem is not null)
            {
                failed.Add(new RecipientState { Address = address, Local = local, Status = RecipientStatus.Bounced, Detail = problem, LastAttempt = now });
            }
        }
        var envelope = new Envelope
        {
            Id = id.Value,
            Received = now,
            // A refused message goes back to the user who dropped it, never to an address they claimed.
            From = refusal is null ? from : own,
            Body = fields.EightBit ? "8BITMIME" : "7BIT",
            SmtpUtf8 = !envelopeRecipients.Select(r => r.Address).Append(from).All(a => Ascii.IsValid(a)),
            AuthUser = user,
            ClientIp = "",
            Helo = $"uid {facts.Uid.ToString(CultureInfo.InvariantCulture)}",
            Listener = "sendmail",
            Protocol = "local",
            Recipients = envelopeRecipients,
        };
        if (failed.Count > 0)
        {
            // Written before the message is committed: a crash between leaves a harmless orphan state.
            var state = QueueControl.InitialState(envelope);
            foreach (var f in failed)
            {
                var r = state.Recipients.First(x => x.Address.Equals(f.Address, StringComparison.OrdinalIgnoreCase));
                (r.Status, r.Detail, r.LastAttempt) = (f.Status, f.Detail, f.LastAttempt);
            }
            spool.WriteState(id, state);
        }
        SpooledMessage message;
        // Room for BODY=8BITMIME, known only once the body is read.
        using (var writer = spool.Create(envelope, room: 16))
        {
            writer.WriteText($"Received: by {options.Hostname} (Postern, from userid {facts.Uid.ToString(CultureInfo.InvariantCulture)})\r\n\tid {id.Value}; {Smtp.SmtpSession.FormatDate(now)}\r\n");
            submission.WriteHeader(writer, fields, from, header.FullName, () => $"<{id.Value}.{now.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)}@{options.Hostname}>", Smtp.SmtpSession.FormatDate(now));
            if (submission.WriteBody(fields, writer) && envelope.Body != "8BITMIME")
            {
                envelope.Body = "8BITMIME";
                writer.RewriteEnvelope(envelope);
            }
            var start = writer.MessageStart;
            var length = writer.Length - start;
            await writer.CommitAsync().ConfigureAwait(false);
            message = new SpooledMessage(id, envelope, spool.MessagePath(id), start, length);
        }
        if (refusal is not null)
        {
            Log.PickupRefused(logger, id.Value, name, facts.Uid, user, header.From ?? own, refusal);
        }
        Log.Pickup(logger, id.Value, facts.Uid, user, envelope.From, envelopeRecipients.Count, message.MessageLength);
        committed(message);
        // Only now: the message is in the queue. A crash before this line picks it up again (a duplicate).
        File.Delete(Path.Combine(Directory, name));
        return true;
    }

    /// <summary>
    /// Whether <paramref name="user"/> may give <paramref name="sender"/> as envelope sender: root, the
    /// server's own user and Sendmail.TrustedUsers may give any (the null sender too); everyone else
    /// only NAME@Hostname and NAME+tag@Hostname. <paramref name="serverUid"/> is the user the server runs as.
    /// </summary>
    public static bool MaySendAs(PosternOptions options, uint uid, string user, string sender, uint serverUid)
    {
        if (uid == 0 || uid == serverUid || options.Sendmail.TrustedUsers.Contains(user, StringComparer.Ordinal))
        {
            return true;
        }
        var at = sender.LastIndexOf('@');
        if (at <= 0 || !sender[(at + 1)..].Equals(options.Hostname, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        var local = sender[..at];
        return local.Equals(user, StringComparison.OrdinalIgnoreCase) || local.StartsWith(user + "+", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Moves a bad file to queue/corrupt/maildrop.NAME (never deletes it) and says so.</summary>
    /// <summary>What a user wrote, with every control character (CR and LF among them) shown as '?'.</summary>
    private static string Printable(string text) => string.Create(text.Length, text, (span, t) =>
    {
        for (var i = 0; i < t.Length; i++)
        {
            span[i] = char.IsControl(t[i]) ? '?' : t[i];
        }
    });

    private void MoveAside(string name, uint? uid, string reason)
    {
        var target = Path.Combine(spool.CorruptDir, "maildrop." + name);
        if (File.Exists(target))
        {
            target += "." + DateTime.UtcNow.Ticks.ToString(CultureInfo.InvariantCulture);
        }
        File.Move(Path.Combine(Directory, name), target);
        spool.Durability.FlushDirectory(spool.CorruptDir);
        Log.PickupBadFile(logger, name, uid?.ToString(CultureInfo.InvariantCulture) ?? "-", uid is { } u ? UnixUser.ById(u)?.Name ?? "-" : "-", target, reason);
    }
}
