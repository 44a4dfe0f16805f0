namespace Postern.Protocol.Parsing;

/// <summary>
/// Checks BDAT chunks (RFC 3030). A chunk is counted, not terminated, so its bytes cannot end the
/// message early; the same content rules as DATA still hold (SPEC §5): a bare CR or LF is refused,
/// because Postern must never pass one on to a server that might read it as a line end. The state
/// carries across chunks, so a CR ending one chunk and the LF starting the next form one CRLF.
/// </summary>
public sealed class BdatReader(long maxSize, int maxLineLength = 1000) : ContentReader(maxSize, maxLineLength)
{
    private const byte Cr = (byte)'\r';
    private const byte Lf = (byte)'\n';

    private bool _sawCr;
    private int _lineLength;

    /// <summary>True once a bare CR or LF was seen: the session refuses and closes.</summary>
    public bool HasBareLineEnding { get; private set; }

    /// <inheritdoc/>
    public override bool Discarding => base.Discarding || HasBareLineEnding;

    /// <summary>Checks one piece of a chunk; returns false once the content is to be refused.</summary>
    public bool Check(ReadOnlySpan<byte> piece)
    {
        Size += piece.Length;
        if (Size > MaxSize)
        {
            TooBig = true;
        }
        foreach (var b in piece)
        {
            if (_sawCr)
            {
                if (b != Lf)
                {
                    HasBareLineEnding = true;
                    return false;
                }
                _sawCr = false;
                _lineLength = 0;
                continue;
            }
            _lineLength++;
            if (b == Cr)
            {
                _sawCr = true;
                _lineLength++;
                if (_lineLength > MaxLineLength)
                {
                    LineTooLong = true;
                }
            }
            else if (b == Lf)
            {
                HasBareLineEnding = true;
                return false;
            }
            else if (b == 0)
            {
                HasNul = true;
            }
        }
        if (_lineLength > MaxLineLength)
        {
            LineTooLong = true;
        }
        return !Discarding;
    }

    /// <summary>At BDAT LAST: the content must not end inside a CRLF.</summary>
    public bool CheckEnd()
    {
        if (_sawCr)
        {
            HasBareLineEnding = true;
        }
        return !Discarding;
    }
}
