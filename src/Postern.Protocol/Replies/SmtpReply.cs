using System.Text;

namespace Postern.Protocol.Replies;

/// <summary>
/// One SMTP reply: the three-digit code, the RFC 3463 enhanced status code and the text.
/// RFC 2034 §3: with ENHANCEDSTATUSCODES every reply except the greeting and the EHLO/HELO reply
/// carries the enhanced code; Postern puts it on those too where it is meaningful.
/// </summary>
public sealed record SmtpReply(int Code, string? Enhanced, string Text)
{
    /// <summary>True for 4xx and 5xx replies.</summary>
    public bool IsError => Code >= 400;

    /// <summary>True when the client should not repeat the command unchanged.</summary>
    public bool IsPermanent => Code >= 500;

    /// <summary>A copy of this reply whose text is <paramref name="text"/>.</summary>
    public SmtpReply WithText(string text) => new(Code, Enhanced, text);

    /// <summary>Writes the reply with CRLF line endings; a text with several lines becomes a multi-line reply.</summary>
    public void WriteTo(Stream s) => s.Write(ToBytes());

    private byte[]? _bytes;

    /// <summary>The reply as the bytes sent on the wire (built once per reply object: catalogue replies are reused).</summary>
    public byte[] ToBytes() => _bytes ??= Build();

    private byte[] Build()
    {
        var sb = new StringBuilder(Text.Length + 16);
        var lines = Text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            sb.Append(Code);
            sb.Append(i == lines.Length - 1 ? ' ' : '-');
            if (Enhanced is not null)
            {
                sb.Append(Enhanced).Append(' ');
            }
            sb.Append(lines[i]).Append("\r\n");
        }
        // Replies may echo client data (addresses); they are 7-bit or UTF-8 only after SMTPUTF8.
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    /// <summary>Equal when code, enhanced code and text are (the cached bytes do not count).</summary>
    public bool Equals(SmtpReply? other) => other is not null && Code == other.Code && Enhanced == other.Enhanced && Text == other.Text;

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Code, Enhanced, Text);

    /// <inheritdoc/>
    public override string ToString() => Enhanced is null ? $"{Code} {Text}" : $"{Code} {Enhanced} {Text}";
}
