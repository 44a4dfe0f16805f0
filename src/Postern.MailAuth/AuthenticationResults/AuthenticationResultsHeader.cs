using System.Text;

namespace Postern.MailAuth.AuthenticationResults;

/// <summary>One method's result in an Authentication-Results field (RFC 8601 §2.2): <c>spf=pass smtp.mailfrom=example.com</c>.</summary>
/// <param name="Method">spf, dkim, dmarc, arc, auth, iprev.</param>
/// <param name="Result">The result word.</param>
/// <param name="Reason">Optional, for people: <c>reason="..."</c>.</param>
/// <param name="Properties">ptype.property=value pairs, e.g. ("smtp.mailfrom", "example.com"), ("header.d", "example.com").</param>
public sealed record MethodResult(string Method, AuthResult Result, string? Reason = null, IReadOnlyList<(string Name, string Value)>? Properties = null);

/// <summary>
/// Writes the Authentication-Results header field Postern adds to every message it receives
/// (RFC 8601), and recognises the ones a sender forged with Postern's own authserv-id, which are
/// removed before the message is stored (RFC 8601 §5).
/// </summary>
public static class AuthenticationResultsHeader
{
    /// <summary>The whole field, folded, ending in CRLF: <c>Authentication-Results: host; spf=pass ...; dkim=...</c>.</summary>
    public static string Format(string authservId, IReadOnlyList<MethodResult> results) =>
        Format(authservId, results.Select(ToResInfo).ToList());

    /// <summary>The whole field from ready-made resinfo texts (<c>dkim=pass header.d=example.com</c>), one per folded line.</summary>
    public static string Format(string authservId, IReadOnlyList<string> resinfos)
    {
        var sb = new StringBuilder("Authentication-Results: ").Append(authservId);
        if (resinfos.Count == 0)
        {
            // RFC 8601 §2.2: "none" when no method was applied.
            return sb.Append("; none\r\n").ToString();
        }
        foreach (var r in resinfos)
        {
            sb.Append(";\r\n\t").Append(r);
        }
        return sb.Append("\r\n").ToString();
    }

    /// <summary>One method's resinfo: <c>spf=pass reason="..." smtp.mailfrom=example.com</c>.</summary>
    public static string ToResInfo(MethodResult r)
    {
        var sb = new StringBuilder(r.Method).Append('=').Append(Word(r.Result));
        if (r.Reason is { Length: > 0 } reason)
        {
            sb.Append(" reason=").Append(Quote(reason));
        }
        foreach (var (name, value) in r.Properties ?? [])
        {
            sb.Append(' ').Append(name).Append('=').Append(IsToken(value) ? value : Quote(value));
        }
        return sb.ToString();
    }

    /// <summary>The result word of RFC 8601 §2.7.</summary>
    public static string Word(AuthResult result) => result switch
    {
        AuthResult.None => "none",
        AuthResult.Pass => "pass",
        AuthResult.Fail => "fail",
        AuthResult.SoftFail => "softfail",
        AuthResult.Neutral => "neutral",
        AuthResult.TempError => "temperror",
        AuthResult.PermError => "permerror",
        AuthResult.Policy => "policy",
        _ => throw new ArgumentOutOfRangeException(nameof(result)),
    };

    /// <summary>
    /// The authserv-id of an Authentication-Results field value (the text after the colon): the
    /// first token, after any comments and white space, up to the first ';', white space or comment.
    /// Null when there is none.
    /// </summary>
    public static string? AuthservId(string value)
    {
        var i = SkipCfws(value, 0);
        var start = i;
        while (i < value.Length && value[i] is not (';' or ' ' or '\t' or '\r' or '\n' or '('))
        {
            i++;
        }
        return i > start ? value[start..i] : null;
    }

    /// <summary>True for a field that claims to come from us (its authserv-id is ours): it must go (RFC 8601 §5).</summary>
    public static bool ClaimsToBe(string fieldValue, string authservId) =>
        string.Equals(AuthservId(fieldValue), authservId, StringComparison.OrdinalIgnoreCase);

    private static int SkipCfws(string s, int i)
    {
        var depth = 0;
        while (i < s.Length)
        {
            var c = s[i];
            if (depth > 0)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '(')
                {
                    depth++;
                }
                else if (c == ')')
                {
                    depth--;
                }
            }
            else if (c == '(')
            {
                depth = 1;
            }
            else if (c is not (' ' or '\t' or '\r' or '\n'))
            {
                break;
            }
            i++;
        }
        return i;
    }

    /// <summary>A value that may stand unquoted: an RFC 2045 token, or a domain or address (RFC 8601 pvalue).</summary>
    private static bool IsToken(string s) => s.Length > 0 && s.All(c => c == '@' || (c > ' ' && c < 127 && "()<>,;:\\\"/[]?=".IndexOf(c) < 0));

    private static string Quote(string s) =>
        "\"" + new string(s.Where(c => c >= ' ' && c != 127).ToArray()).Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
}
