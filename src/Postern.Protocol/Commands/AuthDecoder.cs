using System.Text;

namespace Postern.Protocol.Commands;

/// <summary>What one AUTH line (an initial response or a reply to a 334 challenge) decodes to.</summary>
public enum AuthLineStatus
{
    /// <summary>Base64 of valid UTF-8; the text is returned.</summary>
    Decoded,
    /// <summary>"*": the client cancels the exchange (RFC 4954 §4).</summary>
    Cancelled,
    /// <summary>Not base64, or not UTF-8 once decoded.</summary>
    BadBase64,
}

/// <summary>The three fields of a PLAIN response (RFC 4616 §2).</summary>
public sealed record PlainCredentials(string AuthorizationId, string AuthenticationId, string Password);

/// <summary>
/// Decodes the client's side of AUTH PLAIN and LOGIN. Pure: the session reads the lines, checks
/// the credentials and chooses the replies; this only turns text into values, so it can be fuzzed.
/// </summary>
public static class AuthDecoder
{
    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    /// <summary>
    /// Decodes one AUTH line. RFC 4954 §4: "*" cancels, and "=" is an empty initial response.
    /// </summary>
    public static AuthLineStatus DecodeLine(string line, out string text)
    {
        text = "";
        if (line == "*")
        {
            return AuthLineStatus.Cancelled;
        }
        if (line == "=")
        {
            return AuthLineStatus.Decoded;
        }
        try
        {
            text = StrictUtf8.GetString(Convert.FromBase64String(line));
            return AuthLineStatus.Decoded;
        }
        catch (Exception e) when (e is FormatException or DecoderFallbackException)
        {
            return AuthLineStatus.BadBase64;
        }
    }

    /// <summary>
    /// Splits a decoded PLAIN response, RFC 4616 §2: [authzid] NUL authcid NUL passwd.
    /// Any other number of NULs is malformed.
    /// </summary>
    public static bool TryParsePlain(string decoded, out PlainCredentials credentials)
    {
        var parts = decoded.Split('\0');
        if (parts.Length != 3)
        {
            credentials = new PlainCredentials("", "", "");
            return false;
        }
        credentials = new PlainCredentials(parts[0], parts[1], parts[2]);
        return true;
    }
}
