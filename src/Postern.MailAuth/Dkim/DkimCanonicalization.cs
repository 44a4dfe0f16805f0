using System.Security.Cryptography;

namespace Postern.MailAuth.Dkim;

/// <summary>
/// Body canonicalization (RFC 6376 §3.4.3 simple, §3.4.4 relaxed) over raw message bytes, fed in
/// chunks, straight into a hash. Signer and verifier both hash the bytes as they are, never a
/// re-serialization of a parsed message.
/// A bare LF ends a line as CRLF does (the spool holds CRLF; this only keeps odd input well defined).
/// </summary>
internal sealed class DkimBodyCanonicalizer(bool relaxed, IncrementalHash? hash = null, long limit = long.MaxValue)
{
    private static readonly byte[] CrLf = "\r\n"u8.ToArray();
    private readonly byte[] _buffer = new byte[8192];
    private int _buffered;
    private long _emptyLines;
    private bool _lineStarted;
    private bool _pendingSpace;
    private bool _pendingCr;

    /// <summary>Octets of canonical body produced so far (hashing stops at the limit; counting does not).</summary>
    public long Length { get; private set; }

    public void Append(ReadOnlySpan<byte> data)
    {
        foreach (var b in data)
        {
            if (_pendingCr)
            {
                _pendingCr = false;
                if (b == '\n')
                {
                    EndLine();
                    continue;
                }
                Content((byte)'\r');
            }
            switch (b)
            {
                case (byte)'\r':
                    _pendingCr = true;
                    break;
                case (byte)'\n':
                    EndLine();
                    break;
                case (byte)' ' or (byte)'\t' when relaxed:
                    // §3.4.4: "Reduce all sequences of WSP within a line to a single SP character."
                    _pendingSpace = true;
                    break;
                default:
                    Content(b);
                    break;
            }
        }
    }

    /// <summary>Ends the body: trailing empty lines dropped, a missing final CRLF added.</summary>
    public void Finish()
    {
        if (_pendingCr)
        {
            _pendingCr = false;
            Content((byte)'\r');
        }
        // §3.4.4: "Ignore all whitespace at the end of lines."
        _pendingSpace = false;
        if (_lineStarted)
        {
            Emit(CrLf);
            _lineStarted = false;
        }
        // §3.4.3: an empty body is canonicalized as a single CRLF by simple; relaxed leaves it empty.
        if (!relaxed && Length == 0)
        {
            Emit(CrLf);
        }
        Flush();
    }

    private void Content(byte b)
    {
        if (!_lineStarted)
        {
            // §3.4.3/§3.4.4: empty lines count only when content follows them (those at the end are ignored).
            for (; _emptyLines > 0; _emptyLines--)
            {
                Emit(CrLf);
            }
            _lineStarted = true;
        }
        if (_pendingSpace)
        {
            _pendingSpace = false;
            Emit((byte)' ');
        }
        Emit(b);
    }

    private void EndLine()
    {
        _pendingSpace = false;
        if (_lineStarted)
        {
            Emit(CrLf);
            _lineStarted = false;
        }
        else
        {
            _emptyLines++;
        }
    }

    private void Emit(ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes)
        {
            Emit(b);
        }
    }

    private void Emit(byte b)
    {
        if (_buffered == _buffer.Length)
        {
            Flush();
        }
        _buffer[_buffered++] = b;
        Length++;
    }

    private void Flush()
    {
        if (hash is not null && _buffered > 0)
        {
            // Only the first `limit` octets are hashed (l=): what was hashed before this buffer is Length - _buffered.
            var hashedBefore = Length - _buffered;
            var take = (int)Math.Clamp(limit - hashedBefore, 0, _buffered);
            hash.AppendData(_buffer, 0, take);
        }
        _buffered = 0;
    }
}

/// <summary>
/// Reads a message in chunks: keeps the header block (up to a bound) and streams the body, from
/// the octet after the empty line, into the body canonicalizers.
/// </summary>
internal sealed class DkimMessageSplitter(IReadOnlyList<DkimBodyCanonicalizer> bodies, int maxHeaderBytes = int.MaxValue)
{
    private readonly MemoryStream _header = new();
    private bool _inBody;

    /// <summary>The header block, including the CRLF of its last field, once the body has begun or the message ended.</summary>
    public ReadOnlySpan<byte> HeaderBlock => _header.GetBuffer().AsSpan(0, (int)_header.Length);

    /// <returns>False when the header block has grown past the bound.</returns>
    public bool Append(ReadOnlySpan<byte> chunk)
    {
        if (_inBody)
        {
            Body(chunk);
            return true;
        }
        _header.Write(chunk);
        var buffered = _header.GetBuffer().AsSpan(0, (int)_header.Length);
        var offset = DkimHeaders.BodyOffset(buffered);
        if (offset < 0)
        {
            return _header.Length <= maxHeaderBytes;
        }
        _inBody = true;
        Body(buffered[offset..]);
        _header.SetLength(offset);
        return offset <= maxHeaderBytes;
    }

    public void Finish()
    {
        foreach (var body in bodies)
        {
            body.Finish();
        }
    }

    private void Body(ReadOnlySpan<byte> chunk)
    {
        foreach (var body in bodies)
        {
            body.Append(chunk);
        }
    }
}

/// <summary>One header field as it was in the message: its name and every raw octet up to, not including, its final CRLF.</summary>
internal sealed record RawHeaderField(string Name, byte[] Raw);

/// <summary>The header block of raw message bytes (RFC 5322 §2.2) and header canonicalization (RFC 6376 §3.4.1, §3.4.2).</summary>
internal static class DkimHeaders
{
    /// <summary>Where the body starts: after the first empty line, or the end when there is none.</summary>
    public static int BodyOffset(ReadOnlySpan<byte> message)
    {
        if (message.StartsWith("\r\n"u8))
        {
            return 2;
        }
        if (message.StartsWith("\n"u8))
        {
            return 1;
        }
        for (var i = message.IndexOf((byte)'\n'); i >= 0 && i + 1 < message.Length;)
        {
            var rest = message[(i + 1)..];
            if (rest.StartsWith("\r\n"u8))
            {
                return i + 3;
            }
            if (rest[0] == '\n')
            {
                return i + 2;
            }
            var next = rest.IndexOf((byte)'\n');
            i = next < 0 ? -1 : i + 1 + next;
        }
        return -1;
    }

    /// <summary>Splits a header block into fields; lines that are not fields (no colon) are skipped.</summary>
    public static List<RawHeaderField> Parse(ReadOnlySpan<byte> block)
    {
        var fields = new List<RawHeaderField>();
        int start = -1, end = -1;
        var pos = 0;
        while (pos < block.Length)
        {
            var nl = block[pos..].IndexOf((byte)'\n');
            var lineEnd = nl < 0 ? block.Length : pos + nl;
            var contentEnd = lineEnd > pos && block[lineEnd - 1] == '\r' ? lineEnd - 1 : lineEnd;
            if (contentEnd == pos)
            {
                break; // the empty line that ends the header block
            }
            if (block[pos] is (byte)' ' or (byte)'\t')
            {
                if (start >= 0)
                {
                    end = contentEnd; // a continuation line folds into the field above
                }
            }
            else
            {
                Add(fields, block, start, end);
                start = pos;
                end = contentEnd;
            }
            pos = lineEnd + 1;
        }
        Add(fields, block, start, end);
        return fields;
    }

    private static void Add(List<RawHeaderField> fields, ReadOnlySpan<byte> block, int start, int end)
    {
        if (start < 0)
        {
            return;
        }
        var raw = block[start..end];
        var colon = raw.IndexOf((byte)':');
        if (colon <= 0)
        {
            return;
        }
        var name = System.Text.Encoding.ASCII.GetString(raw[..colon]).TrimEnd(' ', '\t');
        if (name.Length > 0 && name.All(c => c is > ' ' and <= '~'))
        {
            fields.Add(new RawHeaderField(name, raw.ToArray()));
        }
    }

    /// <summary>§3.4.2 relaxed: name in lower case, value unfolded, whitespace runs as one SP, trimmed; then CRLF unless it is the signature itself.</summary>
    public static void Relaxed(ReadOnlySpan<byte> field, Stream output, bool crlf)
    {
        var colon = field.IndexOf((byte)':');
        foreach (var b in field[..colon].TrimEnd(" \t"u8))
        {
            output.WriteByte(b is >= (byte)'A' and <= (byte)'Z' ? (byte)(b + 32) : b);
        }
        output.WriteByte((byte)':');
        var space = false;
        var started = false;
        foreach (var b in field[(colon + 1)..])
        {
            switch (b)
            {
                case (byte)'\r' or (byte)'\n':
                    break; // unfolding
                case (byte)' ' or (byte)'\t':
                    space = started;
                    break;
                default:
                    if (space)
                    {
                        output.WriteByte((byte)' ');
                        space = false;
                    }
                    output.WriteByte(b);
                    started = true;
                    break;
            }
        }
        if (crlf)
        {
            output.Write("\r\n"u8);
        }
    }

    /// <summary>§3.4.1 simple: the field exactly as it was.</summary>
    public static void Simple(ReadOnlySpan<byte> field, Stream output, bool crlf)
    {
        output.Write(field);
        if (crlf)
        {
            output.Write("\r\n"u8);
        }
    }
}
