using System.Buffers;
using System.Text;

namespace Postern.Server.Smtp;

/// <summary>
/// On submission, adds a missing Message-ID and Date (RFC 6409 §8.2, §8.3). Holds back the header
/// section (up to <see cref="MaxHeaderBytes"/>) until its end is seen, then writes the added fields
/// before the blank line. Past the bound it gives up and passes everything through unchanged.
/// </summary>
internal sealed class HeaderFixup(IBufferWriter<byte> inner, Func<string> messageId, Func<string> date) : IBufferWriter<byte>
{
    private const int MaxHeaderBytes = 256 * 1024;
    private ArrayBufferWriter<byte>? _held = new(4096);
    private int _scanned;

    public void Advance(int count)
    {
        if (_held is null)
        {
            inner.Advance(count);
            return;
        }
        _held.Advance(count);
        var data = _held.WrittenSpan;
        // The header section ends at the first empty line: CRLF at the very start, or CRLF CRLF.
        if (data.Length >= 2 && data[0] == '\r' && data[1] == '\n')
        {
            Release(0);
            return;
        }
        var from = Math.Max(0, _scanned - 3);
        var end = data[from..].IndexOf("\r\n\r\n"u8);
        if (end >= 0)
        {
            Release(from + end + 2);
            return;
        }
        _scanned = data.Length;
        if (data.Length > MaxHeaderBytes)
        {
            inner.Write(data);
            _held = null;
        }
    }

    public Memory<byte> GetMemory(int sizeHint = 0) => _held is null ? inner.GetMemory(sizeHint) : _held.GetMemory(sizeHint);

    public Span<byte> GetSpan(int sizeHint = 0) => _held is null ? inner.GetSpan(sizeHint) : _held.GetSpan(sizeHint);

    /// <summary>At the end of the message: a message that is all header gets its fields at the end.</summary>
    public void Complete()
    {
        if (_held is not null)
        {
            var data = _held.WrittenSpan;
            Release(data.Length >= 2 && data[^2] == '\r' && data[^1] == '\n' ? data.Length : -1);
        }
    }

    /// <summary>Writes the header section [0, headerEnd), the added fields, then the rest.</summary>
    private void Release(int headerEnd)
    {
        var data = _held!.WrittenSpan;
        if (headerEnd < 0)
        {
            // Unterminated last line: adding a field would glue it to that line; leave it as it is.
            inner.Write(data);
            _held = null;
            return;
        }
        var headers = data[..headerEnd];
        var hasId = false;
        var hasDate = false;
        foreach (var range in headers.Split("\r\n"u8))
        {
            var line = headers[range];
            if (line.Length == 0 || line[0] == ' ' || line[0] == '\t')
            {
                continue;
            }
            var colon = line.IndexOf((byte)':');
            if (colon <= 0)
            {
                continue;
            }
            var name = Encoding.ASCII.GetString(line[..colon]).Trim();
            hasId |= name.Equals("Message-ID", StringComparison.OrdinalIgnoreCase);
            hasDate |= name.Equals("Date", StringComparison.OrdinalIgnoreCase);
        }
        inner.Write(headers);
        if (!hasId)
        {
            inner.Write(Encoding.ASCII.GetBytes($"Message-ID: {messageId()}\r\n"));
        }
        if (!hasDate)
        {
            inner.Write(Encoding.ASCII.GetBytes($"Date: {date()}\r\n"));
        }
        inner.Write(data[headerEnd..]);
        _held = null;
    }
}
