using System.Buffers;

namespace Postern.Protocol.Parsing;

/// <summary>What <see cref="LineReader.TryRead"/> found.</summary>
public enum LineStatus
{
    /// <summary>A complete line ending in CRLF; the line is returned without it.</summary>
    Line,
    /// <summary>No line end yet and the limit is not reached: read more.</summary>
    Incomplete,
    /// <summary>The line passes the limit. The bytes read so far are consumed; skip to the next LF.</summary>
    TooLong,
    /// <summary>A bare CR or a bare LF: the line did not end in CRLF, or held a CR inside it.</summary>
    BareLineEnding,
}

/// <summary>
/// Reads command lines. RFC 5321 §2.3.8: lines end in CRLF and a CR or LF alone is not a line end;
/// Postern refuses such lines rather than guessing (SPEC §5). RFC 5321 §4.5.3.1.4: a command line
/// is at most 512 octets including the CRLF.
/// </summary>
public static class LineReader
{
    private const byte Cr = (byte)'\r';
    private const byte Lf = (byte)'\n';

    /// <summary>
    /// Tries to read one line of at most <paramref name="maxLength"/> octets including CRLF.
    /// Advances <paramref name="reader"/> past what it consumed.
    /// </summary>
    public static LineStatus TryRead(ref SequenceReader<byte> reader, int maxLength, out ReadOnlySequence<byte> line)
    {
        line = default;
        // Bound the search before looking (STYLE principle 2): never scan more than the limit.
        var window = reader.UnreadSequence;
        if (window.Length > maxLength)
        {
            window = window.Slice(0, maxLength);
        }
        var lf = window.PositionOf(Lf);
        if (lf is null)
        {
            if (window.Length >= maxLength)
            {
                reader.Advance(window.Length);
                return LineStatus.TooLong;
            }
            return LineStatus.Incomplete;
        }
        var withoutLf = window.Slice(0, lf.Value);
        reader.Advance(withoutLf.Length + 1);
        if (withoutLf.Length == 0 || LastByte(withoutLf) != Cr)
        {
            return LineStatus.BareLineEnding;
        }
        line = withoutLf.Slice(0, withoutLf.Length - 1);
        if (line.PositionOf(Cr) is not null)
        {
            return LineStatus.BareLineEnding;
        }
        return LineStatus.Line;
    }

    /// <summary>Skips to just past the next LF (after a too-long line). Returns false if none is buffered yet.</summary>
    public static bool SkipPastLineFeed(ref SequenceReader<byte> reader)
    {
        if (reader.TryAdvanceTo(Lf, advancePastDelimiter: true))
        {
            return true;
        }
        reader.AdvanceToEnd();
        return false;
    }

    private static byte LastByte(in ReadOnlySequence<byte> s)
    {
        if (s.IsSingleSegment)
        {
            return s.FirstSpan[^1];
        }
        return s.Slice(s.Length - 1).FirstSpan[0];
    }
}
