using System.Buffers;
using System.Text;

namespace Postern.Protocol.Parsing;

/// <summary>
/// Counts the MIME structure of a message as it streams past (the octets go straight on to
/// <c>inner</c>, never held): the body parts (RFC 2046 §5.1.1: each boundary delimiter line opens
/// one) and how deeply multiparts and encapsulated messages (RFC 2046 §5.2.1, message/rfc822) nest.
/// Past a limit it stops counting and reports <see cref="TooManyParts"/> or <see cref="TooDeep"/>;
/// the session refuses the message at its end, so the dialogue stays in step. Memory is fixed: the
/// open boundaries (at most <c>maxDepth</c> of at most 70 octets, RFC 2046 §5.1.1), the first octets
/// of the current line, and the Content-Type field of the current header section (bounded).
/// </summary>
/// <remarks>
/// What the MIME bomb exploits is a parser's cost per part (a MimeKit entity is hundreds of bytes):
/// a million empty parts fit in 7 MB. Only Content-Type matters here: a multipart type with a
/// boundary parameter opens a level whose parts follow; message/rfc822 and message/global open a
/// level whose body starts with a header section. A part's header section ends at its first empty
/// line. A boundary line of an outer level also closes every level inside it, as parsers do when
/// a close-delimiter is missing. Lines are taken as CRLF- or LF-terminated (the session refuses bare
/// line endings separately).
/// </remarks>
public sealed class MimeStructureGuard(IBufferWriter<byte> inner, int maxParts, int maxDepth) : IBufferWriter<byte>
{
    // RFC 2046 §5.1.1: a boundary is 1 to 70 characters; a delimiter line is "--" boundary ["--"] then white space.
    private const int MaxBoundary = 70;
    private const int LinePrefix = 2 + MaxBoundary + 2 + 1;
    // A Content-Type field longer than this is not looked at (a real one is well under 1,000 octets).
    private const int MaxContentType = 4096;

    private readonly List<byte[]?> _levels = []; // one per open level: its boundary, or null for an encapsulated message
    private readonly byte[] _line = new byte[LinePrefix];
    private readonly byte[] _field = new byte[MaxContentType];
    private readonly byte[] _headerLine = new byte[MaxContentType];
    private int _headerLineLength; // octets of the current header line; past the buffer: Length + 1
    private Memory<byte> _last;
    private int _lineLength; // octets of the current line (capped at LinePrefix + 1: "longer")
    private bool _inHeader = true; // in a header section (the message's or a part's)
    private bool _inContentType;
    private int _fieldLength = -1; // octets of the Content-Type value gathered; -1 when none in this section
    private bool _stopped;

    /// <summary>Body parts seen (each boundary delimiter line of an open multipart).</summary>
    public int Parts { get; private set; }

    /// <summary>The deepest nesting seen: 1 for a multipart message, 2 for a multipart inside it, and so on.</summary>
    public int Depth { get; private set; }

    /// <summary>More parts than allowed.</summary>
    public bool TooManyParts { get; private set; }

    /// <summary>Nested deeper than allowed.</summary>
    public bool TooDeep { get; private set; }

    public Memory<byte> GetMemory(int sizeHint = 0) => _last = inner.GetMemory(sizeHint);

    public Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public void Advance(int count)
    {
        if (!_stopped)
        {
            Scan(_last.Span[..count]);
        }
        inner.Advance(count);
    }

    private void Scan(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty && !_stopped)
        {
            var nl = data.IndexOf((byte)'\n');
            var piece = nl < 0 ? data : data[..nl];
            Collect(piece);
            if (nl < 0)
            {
                return;
            }
            EndLine();
            data = data[(nl + 1)..];
        }
    }

    // The octets of a line, before its LF: the first ones kept for the boundary test, and in a header
    // section the whole line (up to a bound), for the Content-Type field.
    private void Collect(ReadOnlySpan<byte> piece)
    {
        var at = Math.Min(_lineLength, LinePrefix);
        var keep = Math.Min(piece.Length, LinePrefix - at);
        piece[..keep].CopyTo(_line.AsSpan(at));
        _lineLength = Math.Min(_lineLength + piece.Length, LinePrefix + 1);
        if (_inHeader)
        {
            if (_headerLineLength + piece.Length > _headerLine.Length)
            {
                _headerLineLength = _headerLine.Length + 1; // too long to be looked at
            }
            else
            {
                piece.CopyTo(_headerLine.AsSpan(_headerLineLength));
                _headerLineLength += piece.Length;
            }
        }
    }

    private void EndLine()
    {
        var line = _line.AsSpan(0, Math.Min(_lineLength, LinePrefix));
        var longer = _lineLength > LinePrefix;
        if (!longer && line.EndsWith("\r"u8))
        {
            line = line[..^1];
        }
        _lineLength = 0;
        if (_inHeader)
        {
            var overflow = _headerLineLength > _headerLine.Length;
            var field = _headerLine.AsSpan(0, overflow ? 0 : _headerLineLength);
            _headerLineLength = 0;
            if (line.IsEmpty && !longer)
            {
                EndHeader();
            }
            else
            {
                HeaderLine(field, overflow);
            }
            return;
        }
        if (longer || line.Length < 3 || line[0] != '-' || line[1] != '-')
        {
            return;
        }
        // Innermost level first: its boundary is the one a part is most likely to use.
        for (var i = _levels.Count - 1; i >= 0; i--)
        {
            if (_levels[i] is not { } boundary || !line[2..].StartsWith(boundary))
            {
                continue;
            }
            var rest = line[(2 + boundary.Length)..];
            var close = rest.StartsWith("--"u8);
            if (close)
            {
                rest = rest[2..];
            }
            if (rest.TrimEnd(" \t"u8).Length != 0)
            {
                continue; // RFC 2046 §5.1.1: only linear white space may follow the boundary
            }
            // Levels inside this one end here.
            _levels.RemoveRange(i + 1, _levels.Count - i - 1);
            if (close)
            {
                _levels.RemoveAt(i); // its epilogue follows, part of the enclosing body
            }
            else
            {
                if (++Parts > maxParts)
                {
                    TooManyParts = true;
                    _stopped = true;
                    return;
                }
                StartHeader();
            }
            return;
        }
    }

    // One line of a header section: a Content-Type field starts, goes on (folded) or ends.
    private void HeaderLine(ReadOnlySpan<byte> field, bool overflow)
    {
        var folded = overflow ? _inContentType : field.Length > 0 && field[0] is (byte)' ' or (byte)'\t';
        if (!folded)
        {
            _inContentType = !overflow && field.Length >= 13 && Ascii.EqualsIgnoreCase(field[..13], "content-type:"u8);
            if (_inContentType)
            {
                _fieldLength = 0;
                field = field[13..];
            }
            else
            {
                return;
            }
        }
        if (!_inContentType || _fieldLength < 0)
        {
            return;
        }
        if (field.EndsWith("\r"u8))
        {
            field = field[..^1];
        }
        if (overflow || _fieldLength + field.Length + 1 > MaxContentType)
        {
            _fieldLength = -1; // too long to be a real one: not looked at
            _inContentType = false;
            return;
        }
        field.CopyTo(_field.AsSpan(_fieldLength));
        _fieldLength += field.Length;
        _field[_fieldLength++] = (byte)' '; // unfolding (RFC 5322 §2.2.3)
    }

    private void StartHeader()
    {
        _inHeader = true;
        _inContentType = false;
        _fieldLength = -1;
    }

    // The empty line after a header section: what its Content-Type opens.
    private void EndHeader()
    {
        _inHeader = false;
        _inContentType = false;
        var value = _fieldLength >= 0 ? _field.AsSpan(0, _fieldLength) : [];
        _fieldLength = -1;
        var type = value.IndexOf((byte)';') is var semi and >= 0 ? value[..semi] : value;
        type = type.Trim(" \t"u8);
        byte[]? boundary = null;
        if (type.Length > 10 && Ascii.EqualsIgnoreCase(type[..10], "multipart/"u8))
        {
            boundary = Boundary(value);
            if (boundary is null)
            {
                return; // no boundary: its body cannot have parts (parsers take it as text)
            }
        }
        else if (!Ascii.EqualsIgnoreCase(type, "message/rfc822"u8) && !Ascii.EqualsIgnoreCase(type, "message/global"u8))
        {
            return;
        }
        _levels.Add(boundary);
        Depth = Math.Max(Depth, _levels.Count);
        if (_levels.Count > maxDepth)
        {
            TooDeep = true;
            _stopped = true;
            return;
        }
        if (boundary is null)
        {
            StartHeader(); // an encapsulated message starts with its own header section
        }
    }

    /// <summary>The boundary parameter of a Content-Type value (RFC 2045 §5.1: token or quoted-string), or null.</summary>
    internal static byte[]? Boundary(ReadOnlySpan<byte> value)
    {
        var text = Encoding.Latin1.GetString(value);
        var i = 0;
        while ((i = text.IndexOf(';', i)) >= 0)
        {
            i++;
            var eq = text.IndexOf('=', i);
            if (eq < 0)
            {
                return null;
            }
            var name = text[i..eq].Trim();
            var rest = text[(eq + 1)..].TrimStart();
            string param;
            if (rest.StartsWith('"'))
            {
                var sb = new StringBuilder();
                var j = 1;
                for (; j < rest.Length && rest[j] != '"'; j++)
                {
                    if (rest[j] == '\\' && j + 1 < rest.Length)
                    {
                        j++;
                    }
                    sb.Append(rest[j]);
                }
                param = sb.ToString();
            }
            else
            {
                var end = rest.IndexOfAny([';', ' ', '\t', '(']);
                param = end < 0 ? rest : rest[..end];
            }
            if (name.Equals("boundary", StringComparison.OrdinalIgnoreCase))
            {
                param = param.TrimEnd(' ');
                return param.Length is > 0 and <= MaxBoundary ? Encoding.Latin1.GetBytes(param) : null;
            }
        }
        return null;
    }
}
