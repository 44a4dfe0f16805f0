using MimeKit;

namespace Postern.MailAuth;

/// <summary>How MimeKit writes what is signed and verified here: with CRLF, as on the wire.</summary>
internal static class MimeFormat
{
    public static FormatOptions Crlf { get; } = Create();

    private static FormatOptions Create()
    {
        var o = FormatOptions.Default.Clone();
        o.NewLineFormat = NewLineFormat.Dos;
        return o;
    }
}
