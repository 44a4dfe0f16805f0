using MimeKit;
using Postern.MailAuth.Dkim;

namespace Postern.MailAuth;

/// <summary>
/// The header section of a message read from a stream, with a bound, and where its body starts.
/// What DKIM and ARC verify is the header fields and a hash of the body: the body is then streamed
/// past a canonicalizer (<see cref="DkimBodyHashes"/>), never parsed. MimeKit parses only this
/// header section (<see cref="Parse"/>), so a message of a million empty MIME parts costs what its
/// header costs, not a tree of a million entities (issue 12: a 7 MB such message cost 957 MiB).
/// </summary>
internal sealed class MessageHead
{
    private MessageHead(byte[] block, long bodyStart)
    {
        Block = block;
        BodyStart = bodyStart;
    }

    /// <summary>The header section, with the empty line that ends it when there is one.</summary>
    public byte[] Block { get; }

    /// <summary>The stream position of the first octet of the body (the end of the stream when there is no body).</summary>
    public long BodyStart { get; }

    /// <summary>
    /// Reads the header section from the stream's position. Null when it is longer than
    /// <paramref name="maxBytes"/> (the stream is then somewhere past the bound).
    /// </summary>
    public static async Task<MessageHead?> ReadAsync(Stream stream, int maxBytes, CancellationToken cancellationToken)
    {
        var start = stream.Position;
        var buffered = new MemoryStream();
        var chunk = new byte[16 * 1024];
        while (true)
        {
            var read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                // No empty line: the message is all header (RFC 5322 §3.5, the body is optional).
                return buffered.Length > maxBytes ? null : new MessageHead(buffered.ToArray(), start + buffered.Length);
            }
            buffered.Write(chunk, 0, read);
            var offset = DkimHeaders.BodyOffset(buffered.GetBuffer().AsSpan(0, (int)buffered.Length));
            if (offset >= 0)
            {
                return offset > maxBytes ? null : new MessageHead(buffered.GetBuffer().AsSpan(0, offset).ToArray(), start + offset);
            }
            if (buffered.Length > maxBytes)
            {
                return null;
            }
        }
    }

    /// <summary>
    /// The header section parsed by MimeKit as a message without a body: its Headers, and the
    /// Content-* fields in Body.Headers as MimeKit's DKIM code looks for them. A multipart type then
    /// has no parts, whatever the body held.
    /// </summary>
    public MimeMessage Parse()
    {
        var text = new MemoryStream(Block.Length + 4);
        text.Write(Block);
        if (!Block.AsSpan().EndsWith("\n\n"u8) && !Block.AsSpan().EndsWith("\r\n\r\n"u8) && !(Block.Length <= 2 && Block.AsSpan().EndsWith("\n"u8)))
        {
            text.Write(Block.AsSpan().EndsWith("\n"u8) ? "\r\n"u8 : "\r\n\r\n"u8);
        }
        text.Position = 0;
        return MimeMessage.Load(text);
    }
}
