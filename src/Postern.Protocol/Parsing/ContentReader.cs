namespace Postern.Protocol.Parsing;

/// <summary>
/// What DATA and BDAT content share (SPEC §5): the size limit, the text line limit of RFC 5321
/// §4.5.3.1.6 (1000 octets with CRLF), and NUL octets, which RFC 5322 §2.3 forbids. Each only flags:
/// the reader keeps going to the real end of the content, and the session refuses afterwards.
/// </summary>
public abstract class ContentReader(long maxSize, int maxLineLength)
{
    public long MaxSize { get; } = maxSize;
    public int MaxLineLength { get; } = maxLineLength;

    /// <summary>Content octets seen so far, whether kept or discarded.</summary>
    public long Size { get; protected set; }

    /// <summary>True once the content passed <see cref="MaxSize"/>.</summary>
    public bool TooBig { get; protected set; }

    /// <summary>True once a line passed <see cref="MaxLineLength"/>.</summary>
    public bool LineTooLong { get; protected set; }

    /// <summary>True once a NUL octet was seen.</summary>
    public bool HasNul { get; protected set; }

    /// <summary>True when the content is no longer kept.</summary>
    public virtual bool Discarding => TooBig || LineTooLong || HasNul;
}
