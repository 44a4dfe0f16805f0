using Microsoft.Extensions.Configuration;
using Postern.Protocol.Addresses;
using Postern.Protocol.Commands;
using Postern.Protocol.Replies;
using Postern.Server.Configuration;
using Postern.Server.Queue;
using Postern.Server.Storage;

using Postern.Invocation;

namespace Postern.Cli;

/// <summary>
/// sendmail's exit codes (sysexits.h), which cron, PHP's mail() and the like read. `postern sendmail`
/// uses these instead of SPEC §1's 0/1/2 (docs: README, Local mail).
/// </summary>
public static class SysExits
{
    public const int Ok = 0;
    public const int Usage = 64;
    public const int DataErr = 65;
    public const int NoUser = 67;
    public const int Software = 70;
    public const int TempFail = 75;
    public const int NoPerm = 77;
    public const int Config = 78;
}

/// <summary>
/// `postern sendmail [options] [recipient ...]`: the sendmail command line that local programs call
/// (cron, mailx, PHP's mail(), unattended-upgrades). The message is left in DATA/maildrop/ for the
/// server (<see cref="Maildrop"/>), which checks again everything checked here: what the caller may
/// do is decided by who owns the file, not by what this process says. With no server running the
/// file waits for the next start, and the command succeeds all the same.
/// <para>
/// It never switches user (the caller's identity is the point), and it reads only what it needs
/// from the configuration (the data directory, Hostname, the limits, Sendmail.TrustedUsers), without
/// validating the rest: an ordinary user may not be able to read the TLS key it names.
/// </para>
/// </summary>
public static class SendmailCommand
{
    private const string Usage = "usage: postern sendmail [-t] [-i|-oi] [-f SENDER] [-F FULLNAME] [-bm|-bs] [-v] [--config FILE] [recipient ...]";

    private sealed class Request
    {
        public string? From;
        public string? FullName;
        public bool Extract;
        public bool IgnoreDots;
        public bool Smtp;
        public bool Verbose;
        public bool NoOp;
        public string? Config;
        public bool Dev;
        public List<string> Recipients { get; } = [];
    }

    public static int Run(string[] args, TextWriter stderr, Stream stdin, Stream stdout)
    {
        Request r;
        try
        {
            r = Parse(args);
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"postern sendmail: {e.Message}");
            stderr.WriteLine(Usage);
            return SysExits.Usage;
        }
        if (r.NoOp)
        {
            return SysExits.Ok;
        }
        PosternOptions options;
        try
        {
            options = LoadOptions(r.Config, r.Dev);
        }
        catch (Exception e) when (e is ConfigurationException or InvalidOperationException or FormatException or InvalidDataException or IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"postern sendmail: configuration error: {e.Message}");
            return SysExits.Config;
        }
        var uid = UnixUser.EffectiveUid;
        var user = UnixUser.ById(uid)?.Name;
        if (user is null)
        {
            stderr.WriteLine($"postern sendmail: uid {uid} has no user name, so mail from it has no sender");
            return SysExits.NoUser;
        }
        try
        {
            return r.Smtp ? RunSmtp(r, options, uid, user, stdin, stdout, stderr) : RunOnce(r, options, uid, user, stdin, stderr);
        }
        catch (IOException e)
        {
            stderr.WriteLine($"postern sendmail: cannot queue the message: {e.Message}");
            return SysExits.TempFail;
        }
        catch (UnauthorizedAccessException e)
        {
            stderr.WriteLine($"postern sendmail: cannot queue the message: {e.Message}");
            return SysExits.TempFail;
        }
    }

    private static Request Parse(string[] args)
    {
        var r = new Request();
        var options = true;
        for (var i = 0; i < args.Length; i++)
        {
            var a = args[i];
            string Value(string flag)
            {
                if (a.Length > flag.Length)
                {
                    return a[flag.Length..];
                }
                if (i + 1 >= args.Length)
                {
                    throw new UsageException($"{flag} needs a value");
                }
                return args[++i];
            }
            if (!options || a.Length < 2 || a[0] != '-')
            {
                r.Recipients.AddRange(a.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
                continue;
            }
            switch (a)
            {
                case "--":
                    options = false;
                    continue;
                case "--config":
                    r.Config = Value("--config");
                    continue;
                case "--dev":
                    r.Dev = true;
                    continue;
                case "-t":
                    r.Extract = true;
                    continue;
                case "-i" or "-oi":
                    r.IgnoreDots = true;
                    continue;
                case "-v":
                    r.Verbose = true;
                    continue;
                case "-bm":
                    continue;
                case "-bs":
                    r.Smtp = true;
                    continue;
                case "-bi":
                    // newaliases: Postern's aliases live in the configuration and are re-read on change.
                    r.NoOp = true;
                    continue;
                case "-n" or "-U" or "-m" or "-G" or "-odi" or "-odb" or "-odq" or "-odd" or "-oem" or "-oee" or "-oep" or "-oeq" or "-oew" or "-om":
                    continue; // accepted and ignored, as Postfix does
            }
            switch (a[1])
            {
                case 'f' or 'r':
                    r.From = Value(a[..2]);
                    break;
                case 'F':
                    r.FullName = Value("-F");
                    break;
                case 'o' when a.Length > 2:
                    // -oX[value]: sendmail.cf options; -oi above is the one that matters. -o alone takes the next word.
                    break;
                case 'o':
                    Value("-o");
                    break;
                case 'B' or 'N' or 'R' or 'V' or 'L' or 'h' or 'C' or 'X':
                    // Body type, DSN notify/return/envelope id, syslog label, hop count, config, log file: ignored, as Postfix does.
                    Value(a[..2]);
                    break;
                case 'A' or 'e' or 'd':
                    break;
                case 'b':
                    throw new UsageException($"{a} is not supported (only -bm, -bs and -bi; for the queue use `postern queue list`)");
                case 'q':
                    throw new UsageException($"{a} is not supported (the server retries by itself; `postern queue flush` asks it to now)");
                default:
                    throw new UsageException($"unknown option {a}");
            }
        }
        return r;
    }

    /// <summary>The keys sendmail needs, from the same sources as every verb (SPEC §2), without validating the others.</summary>
    private static PosternOptions LoadOptions(string? config, bool dev)
    {
        var file = ConfigurationLoader.FindConfigFile(config);
        if (file is null && !dev)
        {
            throw new ConfigurationException("no configuration file (give --config FILE, create ./postern.json or /etc/postern/postern.json)");
        }
        var builder = new ConfigurationBuilder();
        if (dev)
        {
            builder.AddInMemoryCollection(ConfigurationLoader.DevDefaults(Environment.GetEnvironmentVariables()));
        }
        if (file is not null && !(dev && config is null))
        {
            builder.AddJsonFile(file, optional: false, reloadOnChange: false);
        }
        builder.AddInMemoryCollection(ConfigurationLoader.EnvironmentOverrides(Environment.GetEnvironmentVariables()));
        var root = builder.Build();
        var options = new PosternOptions
        {
            Hostname = root["Hostname"] ?? "",
            DataDirectory = root["DataDirectory"] ?? "",
        };
        root.GetSection("Limits").Bind(options.Limits);
        root.GetSection("Sendmail").Bind(options.Sendmail);
        if (string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            throw new ConfigurationException("DataDirectory: is required");
        }
        if (!AddressParser.IsDomain(options.Hostname, false))
        {
            throw new ConfigurationException($"Hostname: '{options.Hostname}' is not a valid host name");
        }
        var baseDir = file is null ? Directory.GetCurrentDirectory() : Path.GetDirectoryName(file)!;
        options.DataDirectory = Path.GetFullPath(options.DataDirectory, baseDir);
        return options;
    }

    /// <summary>-bm: one message from standard input.</summary>
    private static int RunOnce(Request r, PosternOptions options, uint uid, string user, Stream stdin, TextWriter stderr)
    {
        var check = CheckSender(r.From, options, uid, user) ?? CheckRecipients(r.Recipients, options);
        if (check is { } c)
        {
            stderr.WriteLine($"postern sendmail: {c.Message}");
            return c.Code;
        }
        if (r.Recipients.Count == 0 && !r.Extract)
        {
            stderr.WriteLine("postern sendmail: no recipients (give them as arguments, or -t to take them from the To, Cc and Bcc fields)");
            return SysExits.Usage;
        }
        var directory = MaildropDirectory(options, uid, stderr);
        if (directory is null)
        {
            return SysExits.TempFail;
        }
        using var writer = Maildrop.Create(directory, new MaildropHeader { From = r.From, Recipients = r.Recipients, ExtractRecipients = r.Extract, FullName = r.FullName });
        var start = writer.Length;
        var input = new BufferedStream(stdin, 64 * 1024);
        var atLineStart = true;
        var size = 0L;
        while (true)
        {
            var b = input.ReadByte();
            if (b < 0)
            {
                break;
            }
            if (!r.IgnoreDots && atLineStart && b == '.')
            {
                // Without -i, a line of a single dot ends the message (sendmail(8)).
                var next = input.ReadByte();
                if (next == '\n' || next < 0)
                {
                    break;
                }
                if (next == '\r')
                {
                    var after = input.ReadByte();
                    if (after == '\n' || after < 0)
                    {
                        break;
                    }
                    writer.Content.Write(".\r"u8);
                    b = after;
                    size += 2;
                }
                else
                {
                    writer.Content.WriteByte((byte)'.');
                    b = next;
                    size++;
                }
            }
            writer.Content.WriteByte((byte)b);
            size++;
            atLineStart = b == '\n';
            if (size > options.Limits.MaxMessageSize)
            {
                stderr.WriteLine($"postern sendmail: message too big (more than Limits.MaxMessageSize, {options.Limits.MaxMessageSize} octets)");
                return SysExits.DataErr;
            }
        }
        writer.Commit();
        if (r.Verbose)
        {
            stderr.WriteLine($"postern sendmail: {writer.Length - start} octets from {user} (uid {uid}) left for the server as {Path.Combine(directory, writer.Name)}" +
                (ServerRuns(options) ? "" : "; no server is running now: it is queued at the next start"));
        }
        return SysExits.Ok;
    }

    private sealed record Problem(int Code, string Message);

    /// <summary>The same rule the server applies (<see cref="Pickup.MaySendAs"/>), told at once instead of as a bounce.</summary>
    private static Problem? CheckSender(string? from, PosternOptions options, uint uid, string user)
    {
        if (from is null)
        {
            return null;
        }
        var wanted = LocalSubmission.Qualify(from, options.Hostname);
        if (wanted.Length > 0 && AddressParser.TryParseMailbox(wanted, true, out _) != AddressError.None)
        {
            return new Problem(SysExits.DataErr, $"sender {from}: not a valid address");
        }
        var serverUid = FileStatus.OfLink(options.DataDirectory)?.Uid ?? 0;
        return Pickup.MaySendAs(options, uid, user, wanted, serverUid)
            ? null
            : new Problem(SysExits.NoPerm, $"sender {wanted}: {user} may only send as {user}@{options.Hostname} (or {user}+tag@{options.Hostname}); Sendmail.TrustedUsers names the users who may use any sender");
    }

    private static Problem? CheckRecipients(List<string> recipients, PosternOptions options)
    {
        foreach (var rcpt in recipients)
        {
            var a = LocalSubmission.Qualify(rcpt, options.Hostname);
            if (AddressParser.TryParseMailbox(a, true, out var m) != AddressError.None || m is null)
            {
                return new Problem(SysExits.NoUser, $"{rcpt}: not a valid address");
            }
        }
        return recipients.Count > options.Limits.MaxRecipients
            ? new Problem(SysExits.Usage, $"too many recipients ({recipients.Count}; Limits.MaxRecipients is {options.Limits.MaxRecipients})")
            : null;
    }

    /// <summary>DATA/maildrop/; made here when the caller may (root, the data directory's owner), else null with the reason said.</summary>
    private static string? MaildropDirectory(PosternOptions options, uint uid, TextWriter stderr)
    {
        var directory = Maildrop.PathIn(options.DataDirectory);
        if (Directory.Exists(directory))
        {
            return directory;
        }
        // Only the data directory's own user makes a missing one, in a folder that is its own anyway.
        // Root never does: the data directory is another user's, who could put a symbolic link
        // where root would create and chmod it (found in review); the server makes it at start.
        if (uid != 0 && Directory.Exists(options.DataDirectory) && FileStatus.OfLink(options.DataDirectory)?.Uid == uid)
        {
            return Maildrop.Ensure(options.DataDirectory);
        }
        stderr.WriteLine($"postern sendmail: {directory} does not exist (or cannot be reached): the server makes it when it starts; start it once (`postern serve`)");
        return null;
    }

    /// <summary>Whether a server holds the data directory's lock (only for -v; the answer changes nothing).</summary>
    private static bool ServerRuns(PosternOptions options)
    {
        try
        {
            using var held = new FileStream(Path.Combine(options.DataDirectory, "queue", QueueControl.LockFileName), FileMode.Open, FileAccess.Read, FileShare.None);
            return false;
        }
        catch (IOException)
        {
            return true;
        }
        catch (UnauthorizedAccessException)
        {
            return true; // cannot tell; assume the usual
        }
    }

    // ---- -bs: an SMTP dialogue on standard input and output (RFC 5321), each message a maildrop file. ----

    private const int MaxCommandLine = 512;

    /// <summary>
    /// -bs, as PHP mailers (Symfony Mailer's default sendmail transport) use it: HELO/EHLO, MAIL,
    /// RCPT, DATA, RSET, NOOP, QUIT over a pipe. The line parsing is the protocol engine's
    /// (<see cref="CommandParser"/>); lines may end in CRLF or LF, as this is a pipe from a local
    /// program, not a network peer. What DATA collects goes to the maildrop like -bm's input.
    /// </summary>
    private static int RunSmtp(Request r, PosternOptions options, uint uid, string user, Stream stdin, Stream stdout, TextWriter stderr)
    {
        var input = new BufferedStream(stdin, 64 * 1024);
        var output = new BufferedStream(stdout);
        void Say(SmtpReply reply)
        {
            reply.WriteTo(output);
            output.Flush();
        }
        Say(new SmtpReply(220, null, $"{options.Hostname} ESMTP Postern (sendmail -bs)"));
        var greeted = false;
        string? from = null;
        var recipients = new List<string>();
        var errors = 0;
        while (errors < 20)
        {
            var line = ReadLine(input, MaxCommandLine + 1);
            if (line is null)
            {
                return SysExits.Ok; // end of input: nothing half-sent is kept
            }
            if (line.Length > MaxCommandLine)
            {
                Say(Reply.LineTooLong);
                errors++;
                continue;
            }
            var command = CommandParser.Parse(line, options.Hostname);
            SmtpReply answer;
            switch (command)
            {
                case InvalidCommand bad:
                    answer = bad.Reply;
                    break;
                case HeloCommand helo:
                    greeted = true;
                    (from, recipients) = (null, []);
                    answer = helo.Extended
                        ? new SmtpReply(250, null, $"{options.Hostname}\n8BITMIME\nENHANCEDSTATUSCODES\nSIZE {options.Limits.MaxMessageSize}")
                        : new SmtpReply(250, null, options.Hostname);
                    break;
                case MailCommand when !greeted:
                    answer = Reply.SendHeloFirst;
                    break;
                case MailCommand when from is not null:
                    answer = Reply.NestedMail;
                    break;
                case MailCommand mail:
                    var sender = mail.From.ToString();
                    var refused = CheckSender(sender, options, uid, user);
                    answer = refused is null ? Reply.SenderOk : new SmtpReply(553, "5.7.1", refused.Message);
                    if (refused is null)
                    {
                        from = sender;
                    }
                    break;
                case RcptCommand when from is null:
                    answer = Reply.NeedMailFirst;
                    break;
                case RcptCommand when recipients.Count >= options.Limits.MaxRecipients:
                    answer = Reply.TooManyRecipients;
                    break;
                case RcptCommand rcpt:
                    recipients.Add(rcpt.To.ToString());
                    answer = Reply.RecipientOk;
                    break;
                case SimpleCommand { Verb: Verb.Data } when from is null:
                    answer = Reply.NeedMailFirst;
                    break;
                case SimpleCommand { Verb: Verb.Data } when recipients.Count == 0:
                    answer = Reply.NeedRcptFirst;
                    break;
                case SimpleCommand { Verb: Verb.Data }:
                    Say(Reply.StartData);
                    answer = ReceiveData(input, options, from, recipients, uid, stderr, r.Verbose);
                    (from, recipients) = (null, []);
                    if (answer.Code == 0)
                    {
                        return SysExits.Ok; // input ended inside DATA
                    }
                    break;
                case SimpleCommand { Verb: Verb.Rset }:
                    (from, recipients) = (null, []);
                    answer = Reply.ResetOk;
                    break;
                case SimpleCommand { Verb: Verb.Noop }:
                    answer = Reply.NoopOk;
                    break;
                case SimpleCommand { Verb: Verb.Quit }:
                    Say(Reply.Bye);
                    return SysExits.Ok;
                case SimpleCommand { Verb: Verb.Help }:
                    answer = Reply.HelpText;
                    break;
                case SimpleCommand { Verb: Verb.Vrfy or Verb.Expn }:
                    answer = Reply.VrfyCannot;
                    break;
                default:
                    answer = Reply.NotImplemented; // STARTTLS, AUTH, BDAT: nothing to secure or prove on a pipe
                    break;
            }
            errors += answer.IsError ? 1 : 0;
            Say(answer);
        }
        Say(Reply.TooManyErrors);
        return SysExits.Ok;
    }

    /// <summary>Reads DATA to the lone dot (dot-stuffing undone, RFC 5321 §4.5.2) into a maildrop file. Code 0: the input ended first.</summary>
    private static SmtpReply ReceiveData(Stream input, PosternOptions options, string from, List<string> recipients, uint uid, TextWriter stderr, bool verbose)
    {
        var directory = MaildropDirectory(options, uid, stderr);
        using var writer = directory is null ? null : Maildrop.Create(directory, new MaildropHeader { From = from, Recipients = [.. recipients] });
        var size = 0L;
        var tooBig = false;
        while (true)
        {
            // Bounded by the message size; the server cuts lines past 998 octets.
            var line = ReadLine(input, (int)Math.Min(options.Limits.MaxMessageSize, int.MaxValue - 1));
            if (line is null)
            {
                return new SmtpReply(0, null, "");
            }
            if (line.Length == 1 && line[0] == '.')
            {
                break;
            }
            var content = line.Length > 0 && line[0] == '.' ? line.AsSpan(1) : line.AsSpan();
            size += content.Length + 1;
            tooBig |= size > options.Limits.MaxMessageSize;
            if (!tooBig && writer is not null)
            {
                writer.Content.Write(content);
                writer.Content.WriteByte((byte)'\n');
            }
        }
        if (writer is null)
        {
            return Reply.LocalError.WithText("The maildrop directory does not exist yet: the server makes it when it first starts");
        }
        if (tooBig)
        {
            return new SmtpReply(552, "5.3.4", $"Message too big (Limits.MaxMessageSize is {options.Limits.MaxMessageSize} octets)");
        }
        writer.Commit();
        if (verbose)
        {
            stderr.WriteLine($"postern sendmail: message left for the server as {writer.Name}");
        }
        return new SmtpReply(250, "2.0.0", $"OK, left for the server as {writer.Name}");
    }

    /// <summary>One line without its LF (and CR before it); past <paramref name="max"/> octets the rest is skipped (the line comes back one octet longer than max). Null at the end of input.</summary>
    private static byte[]? ReadLine(Stream input, int max)
    {
        var line = new List<byte>(128);
        while (true)
        {
            var b = input.ReadByte();
            if (b < 0)
            {
                return line.Count == 0 ? null : [.. line];
            }
            if (b == '\n')
            {
                if (line.Count > 0 && line[^1] == '\r')
                {
                    line.RemoveAt(line.Count - 1);
                }
                return [.. line];
            }
            if (line.Count <= max)
            {
                line.Add((byte)b);
            }
        }
    }
}
