using System.Buffers;
using System.Text;
using MimeKit;
using Postern.Server.Configuration;

namespace Postern.Server.Queue;

/// <summary>
/// A message as a local program gave it to `postern sendmail`, made into what the queue holds
/// (docs/queue-format.md): lines end in LF, CRLF or a lone CR and all become CRLF (SPEC §6: Postern
/// never emits a bare CR or LF); a line longer than 998 octets is cut (RFC 5322 §2.1.1), a header
/// line by folding; NUL octets are dropped. The header section ends at the first empty line, or at
/// the first line that is not a field (which then starts the body). Bcc and Resent-Bcc are removed,
/// addresses without a domain in the address fields get @Hostname, and a missing From, Date and
/// Message-ID are added (RFC 6409 §8).
/// </summary>
public sealed class LocalSubmission(PosternOptions options, string user)
{
    /// <summary>RFC 5322 §2.1.1: 998 octets before the CRLF.</summary>
    private const int MaxLine = 998;

    private static readonly string[] AddressFields = ["From", "Sender", "Reply-To", "To", "Cc", "Resent-From", "Resent-Sender", "Resent-Reply-To", "Resent-To", "Resent-Cc"];

    private LineSplitter? _lines;

    /// <summary>What the header section holds and says.</summary>
    public sealed class Header
    {
        public List<(string Name, byte[] Field)> Fields { get; } = [];
        public List<string> Recipients { get; } = [];
        public long Octets { get; set; }
        public int Hops { get; set; }
        public bool TooBig { get; set; }
        public bool EightBit { get; set; }

        /// <summary>The first body line when the header section ended without an empty line.</summary>
        public byte[]? FirstBodyLine { get; set; }
    }

    /// <summary>Qualifies an address given by a local program: &lt;&gt; taken off, @Hostname added to a bare name.</summary>
    public static string Qualify(string address, string hostname)
    {
        var a = address.Trim();
        if (a.StartsWith('<') && a.EndsWith('>'))
        {
            a = a[1..^1].Trim();
        }
        return a.Length == 0 || a.Contains('@', StringComparison.Ordinal) ? a : $"{a}@{hostname}";
    }

    /// <summary>Reads the header section (bounded by Limits.MaxHeaderSize) and the recipients of its To, Cc and Bcc fields.</summary>
    public Header ReadHeader(Stream input, long length)
    {
        _lines = new LineSplitter(input, length);
        var header = new Header();
        var line = new ArrayBufferWriter<byte>(256);
        List<byte[]>? current = null;
        string? currentName = null;
        var first = true;
        var continued = false;
        void Close()
        {
            if (current is not null)
            {
                header.Fields.Add((currentName!, Join(current)));
            }
            current = null;
        }
        while (_lines.Next(line, MaxLine, out var complete))
        {
            var bytes = line.WrittenSpan;
            header.EightBit |= !Ascii.IsValid(bytes);
            if (first && bytes.StartsWith("From "u8))
            {
                first = false; // an mbox separator some programs write first: not part of the message
                continued = !complete;
                continue;
            }
            first = false;
            if (continued && current is not null)
            {
                // The rest of a line longer than 998 octets: folded onto a line of its own.
                current.Add([(byte)' ', .. bytes]);
            }
            else if (bytes.Length == 0)
            {
                break;
            }
            else if ((bytes[0] == ' ' || bytes[0] == '\t') && current is not null)
            {
                current.Add(bytes.ToArray());
            }
            else if (FieldName(bytes) is { } name)
            {
                Close();
                currentName = name;
                current = [bytes.ToArray()];
            }
            else
            {
                header.FirstBodyLine = bytes.ToArray();
                break;
            }
            continued = !complete;
            header.Octets += bytes.Length + 2;
            if (header.Octets > options.Limits.MaxHeaderSize)
            {
                header.TooBig = true;
                break;
            }
        }
        Close();
        var resent = header.Fields.Any(f => f.Name is "resent-to" or "resent-cc" or "resent-bcc");
        foreach (var (name, field) in header.Fields)
        {
            header.Hops += name == "received" ? 1 : 0;
            if (resent ? name is "resent-to" or "resent-cc" or "resent-bcc" : name is "to" or "cc" or "bcc")
            {
                if (InternetAddressList.TryParse(Value(field), out var list))
                {
                    header.Recipients.AddRange(list.Mailboxes.Select(m => Qualify(m.Address, options.Hostname)));
                }
            }
        }
        return header;
    }

    /// <summary>Why the header section cannot be queued (the limits of SMTP mail apply), or null.</summary>
    public string? Refusal(Header h) =>
        h.TooBig ? $"552 5.3.4 Header section too large (Limits.MaxHeaderSize is {options.Limits.MaxHeaderSize} octets)"
        : h.Fields.Count > options.Limits.MaxHeaderFields ? $"552 5.3.4 Too many header fields (Limits.MaxHeaderFields is {options.Limits.MaxHeaderFields})"
        : h.Hops > options.Limits.MaxHops ? $"554 5.4.6 Too many Received fields ({h.Hops}): a mail loop? (Limits.MaxHops is {options.Limits.MaxHops})"
        : null;

    /// <summary>Writes the header section as it is queued, with the fields that were missing.</summary>
    public void WriteHeader(IBufferWriter<byte> output, Header h, string from, string? fullName, Func<string> messageId, string date)
    {
        var format = FormatOptions.Default.Clone();
        format.NewLineFormat = NewLineFormat.Dos;
        foreach (var (name, field) in h.Fields)
        {
            if (name is "bcc" or "resent-bcc")
            {
                continue; // a blind copy stays blind
            }
            var rewritten = AddressFields.Contains(name, StringComparer.OrdinalIgnoreCase) ? QualifyField(field, format) : null;
            output.Write(rewritten ?? field);
            output.Write("\r\n"u8);
        }
        if (!h.Fields.Any(f => f.Name == "from"))
        {
            var mailbox = new MailboxAddress(fullName ?? "", from.Length > 0 ? from : $"{user}@{options.Hostname}");
            output.Write(Encoding.UTF8.GetBytes($"From: {mailbox.ToString(format, true)}\r\n"));
        }
        if (!h.Fields.Any(f => f.Name == "date"))
        {
            output.Write(Encoding.ASCII.GetBytes($"Date: {date}\r\n"));
        }
        if (!h.Fields.Any(f => f.Name == "message-id"))
        {
            output.Write(Encoding.ASCII.GetBytes($"Message-ID: {messageId()}\r\n"));
        }
        output.Write("\r\n"u8);
    }

    /// <summary>Writes the body, every line ending in CRLF. Returns whether it has 8-bit octets.</summary>
    public bool WriteBody(Header h, IBufferWriter<byte> output)
    {
        var eightBit = false;
        if (h.FirstBodyLine is { } firstLine)
        {
            eightBit |= !Ascii.IsValid(firstLine);
            output.Write(firstLine);
            output.Write("\r\n"u8);
        }
        var line = new ArrayBufferWriter<byte>(1024);
        while (_lines!.Next(line, MaxLine, out _))
        {
            eightBit |= !Ascii.IsValid(line.WrittenSpan);
            output.Write(line.WrittenSpan);
            output.Write("\r\n"u8);
        }
        return eightBit;
    }

    /// <summary>The field with @Hostname added to each address that has no domain (cron's "To: root"); null when none lacks one.</summary>
    private byte[]? QualifyField(byte[] field, FormatOptions format)
    {
        var colon = Array.IndexOf(field, (byte)':');
        if (!InternetAddressList.TryParse(Value(field), out var list) || list.Mailboxes.All(m => m.Address.Contains('@', StringComparison.Ordinal)))
        {
            return null;
        }
        foreach (var m in list.Mailboxes.Where(m => !m.Address.Contains('@', StringComparison.Ordinal)))
        {
            m.Address = Qualify(m.Address, options.Hostname);
        }
        return Encoding.UTF8.GetBytes($"{Encoding.ASCII.GetString(field, 0, colon)}: {list.ToString(format, true)}");
    }

    private static string Value(byte[] field)
    {
        var colon = Array.IndexOf(field, (byte)':');
        return Encoding.UTF8.GetString(field, colon + 1, field.Length - colon - 1).Replace("\r\n", "", StringComparison.Ordinal);
    }

    /// <summary>The lower-case field name when the line starts a field (RFC 5322 §3.6.8: printable ASCII but colon, then a colon).</summary>
    private static string? FieldName(ReadOnlySpan<byte> line)
    {
        var colon = line.IndexOf((byte)':');
        if (colon <= 0)
        {
            return null;
        }
        var name = line[..colon].TrimEnd((byte)' ');
        foreach (var b in name)
        {
            if (b is < 33 or > 126)
            {
                return null;
            }
        }
        return name.Length == 0 ? null : Encoding.ASCII.GetString(name).ToLowerInvariant();
    }

    private static byte[] Join(List<byte[]> lines)
    {
        var result = new ArrayBufferWriter<byte>();
        for (var i = 0; i < lines.Count; i++)
        {
            if (i > 0)
            {
                result.Write("\r\n"u8);
            }
            result.Write(lines[i]);
        }
        return result.WrittenSpan.ToArray();
    }
}

/// <summary>
/// Splits a stream of at most <paramref name="length"/> octets into lines: LF, CRLF and a lone CR
/// each end one; a line longer than the maximum comes out in pieces (complete=false for all but
/// the last); NUL octets are dropped.
/// </summary>
internal sealed class LineSplitter(Stream input, long length)
{
    private long _left = length;
    private int _pushedBack = -1;

    private int Read()
    {
        if (_pushedBack >= 0)
        {
            var b = _pushedBack;
            _pushedBack = -1;
            return b;
        }
        if (_left <= 0)
        {
            return -1;
        }
        var r = input.ReadByte();
        if (r >= 0)
        {
            _left--;
        }
        return r;
    }

    /// <summary>The next line (or piece) into <paramref name="line"/>; false at the end of the input with nothing read.</summary>
    public bool Next(ArrayBufferWriter<byte> line, int max, out bool complete)
    {
        line.Clear();
        complete = true;
        var any = false;
        while (true)
        {
            var b = Read();
            if (b < 0)
            {
                return any;
            }
            any = true;
            if (b == '\n')
            {
                return true;
            }
            if (b == '\r')
            {
                var next = Read();
                if (next >= 0 && next != '\n')
                {
                    _pushedBack = next;
                }
                return true;
            }
            if (b == 0)
            {
                continue;
            }
            line.GetSpan(1)[0] = (byte)b;
            line.Advance(1);
            if (line.WrittenCount == max)
            {
                // Exactly at the limit with the line ending next: not a piece.
                var next = Read();
                if (next == '\n')
                {
                    return true;
                }
                if (next == '\r')
                {
                    var after = Read();
                    if (after >= 0 && after != '\n')
                    {
                        _pushedBack = after;
                    }
                    return true;
                }
                if (next >= 0)
                {
                    _pushedBack = next;
                    complete = false;
                }
                return true;
            }
        }
    }
}
