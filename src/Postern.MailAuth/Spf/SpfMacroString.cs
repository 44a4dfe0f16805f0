using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Postern.MailAuth.Spf;

/// <summary>The values the SPF macro letters stand for (RFC 7208 §7.2), for one expansion.</summary>
/// <param name="Sender">s: the &lt;sender&gt;, local-part@domain.</param>
/// <param name="LocalPart">l: its local-part ("postmaster" when it had none).</param>
/// <param name="SenderDomain">o: its domain.</param>
/// <param name="Domain">d: the &lt;domain&gt; of the record being evaluated (include and redirect change it).</param>
/// <param name="Ip">i, c, v: the client address (IPv4-mapped IPv6 already turned into IPv4).</param>
/// <param name="Helo">h: the HELO/EHLO name.</param>
/// <param name="ReceivingHost">r: the name of the host doing the check.</param>
/// <param name="Now">t: the time of the check.</param>
internal sealed record SpfMacroValues(
    string Sender,
    string LocalPart,
    string SenderDomain,
    string Domain,
    IPAddress Ip,
    string Helo,
    string ReceivingHost,
    DateTimeOffset Now)
{
    /// <summary>p: the validated domain name of the client (RFC 7208 §7.3); "unknown" when there is none.</summary>
    public string ValidatedName { get; init; } = "unknown";
}

/// <summary>
/// A parsed macro-string (RFC 7208 §7.1): literals, %{letter digits r delimiters} expansions and the
/// escapes %% %_ %-. Parsing checks the whole grammar once, so a syntax error is found before any
/// evaluation (RFC 7208 §4.6: syntax errors anywhere in the record are permerror).
/// </summary>
internal sealed class SpfMacroString
{
    // RFC 7208 §7.1: delimiter = "." / "-" / "+" / "," / "/" / "_" / "="
    private const string AllDelimiters = ".-+,/_=";

    /// <summary>
    /// The longest expansion kept. A TXT record of 64 KiB full of %{S} could otherwise expand to
    /// megabytes; a name is cut to 253 characters anyway, and an SMTP reply line holds 512.
    /// </summary>
    public const int MaxExpansion = 8192;

    private readonly Part[] _parts;

    private SpfMacroString(Part[] parts)
    {
        _parts = parts;
        UsesValidatedName = parts.Any(p => p.Literal is null && p.Letter == 'p');
    }

    /// <summary>Whether the string uses %{p}, whose value costs DNS lookups to find.</summary>
    public bool UsesValidatedName { get; }

    /// <summary>
    /// Parses a macro-string. In an explanation (the TXT record exp= points to) spaces and the letters
    /// c, r and t are allowed as well (RFC 7208 §7.1: explain-string, and "c, r, t only in exp text").
    /// </summary>
    public static bool TryParse(string text, bool explanation, [NotNullWhen(true)] out SpfMacroString? result, out string error) =>
        TryParse(text, explanation, domainSpec: false, out result, out error);

    /// <summary>
    /// Parses a domain-spec: a non-empty macro-string that ends in a macro expansion or in "." and a
    /// valid toplabel, with an optional trailing dot (RFC 7208 §7.1, domain-end).
    /// </summary>
    public static bool TryParseDomainSpec(string text, [NotNullWhen(true)] out SpfMacroString? result, out string error) =>
        TryParse(text, explanation: false, domainSpec: true, out result, out error);

    private static bool TryParse(string text, bool explanation, bool domainSpec, [NotNullWhen(true)] out SpfMacroString? result, out string error)
    {
        result = null;
        var parts = new List<Part>();
        var literal = new StringBuilder();
        var tail = new StringBuilder(); // literal characters since the last macro-expand, for domain-end
        var endsInExpand = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c != '%')
            {
                // macro-literal = %x21-24 / %x26-7E; explain-string adds SP.
                if (!(c is >= '!' and <= '~' || (c == ' ' && explanation)))
                {
                    error = $"character 0x{(int)c:X2} is not allowed in '{Printable(text)}'";
                    return false;
                }
                literal.Append(c);
                tail.Append(c);
                endsInExpand = false;
                continue;
            }
            if (i + 1 >= text.Length)
            {
                error = $"'%' at the end of '{text}'";
                return false;
            }
            var next = text[++i];
            endsInExpand = true;
            tail.Clear();
            switch (next)
            {
                case '%':
                    literal.Append('%');
                    continue;
                case '_':
                    literal.Append(' ');
                    continue;
                case '-':
                    literal.Append("%20");
                    continue;
                case '{':
                    break;
                default:
                    // RFC 7208 §7.1: a '%' not followed by '{', '%', '-' or '_' is a syntax error.
                    error = $"'%{Printable(next.ToString())}' is not a macro in '{Printable(text)}'";
                    return false;
            }
            if (!TryParseExpand(text, ref i, explanation, out var part, out error))
            {
                return false;
            }
            if (literal.Length > 0)
            {
                parts.Add(Part.Text(literal.ToString()));
                literal.Clear();
            }
            parts.Add(part);
        }
        if (literal.Length > 0)
        {
            parts.Add(Part.Text(literal.ToString()));
        }
        if (domainSpec)
        {
            if (text.Length == 0)
            {
                error = "empty domain-spec";
                return false;
            }
            if (!endsInExpand && !EndsInToplabel(tail.ToString()))
            {
                error = $"'{text}' does not end in a macro or in '.' and a valid top label";
                return false;
            }
        }
        result = new SpfMacroString([.. parts]);
        error = "";
        return true;
    }

    // After "%{": macro-letter transformers *delimiter "}", with transformers = *DIGIT [ "r" ].
    private static bool TryParseExpand(string text, ref int i, bool explanation, out Part part, out string error)
    {
        part = default;
        var start = i - 1;
        if (++i >= text.Length)
        {
            error = $"unterminated macro in '{text}'";
            return false;
        }
        var letter = text[i];
        var lower = char.ToLowerInvariant(letter);
        var allowed = explanation ? "slodiphvcrt" : "slodiphv";
        if (!char.IsAsciiLetter(letter) || !allowed.Contains(lower))
        {
            error = explanation || !"crt".Contains(lower)
                ? $"'%{{{Printable(letter.ToString())}' is not a macro letter"
                : $"the macro letter '{letter}' is only allowed in explanation text";
            return false;
        }
        i++;
        var keep = 0;
        var digits = 0;
        while (i < text.Length && char.IsAsciiDigit(text[i]))
        {
            keep = Math.Min(keep * 10 + (text[i] - '0'), 1000);
            digits++;
            i++;
        }
        if (digits > 0 && keep == 0)
        {
            // RFC 7208 §7.3: "If a DIGIT is specified, the value MUST be nonzero."
            error = $"zero parts in macro '{text[start..Math.Min(i, text.Length)]}'";
            return false;
        }
        var reverse = false;
        if (i < text.Length && text[i] is 'r' or 'R')
        {
            reverse = true;
            i++;
        }
        var delimiters = new StringBuilder();
        while (i < text.Length && AllDelimiters.Contains(text[i]))
        {
            delimiters.Append(text[i]);
            i++;
        }
        if (i >= text.Length || text[i] != '}')
        {
            error = $"malformed macro in '{Printable(text)}'";
            return false;
        }
        part = new Part(null, lower, keep, reverse, delimiters.Length == 0 ? "." : delimiters.ToString(), char.IsAsciiLetterUpper(letter));
        error = "";
        return true;
    }

    // domain-end = ( "." toplabel [ "." ] ); the literal text since the last macro must end that way.
    private static bool EndsInToplabel(string tail)
    {
        if (tail.EndsWith('.'))
        {
            tail = tail[..^1];
        }
        var dot = tail.LastIndexOf('.');
        return dot >= 0 && SpfDomainName.IsToplabel(tail.AsSpan(dot + 1));
    }

    /// <summary>Expands the string with the given values (RFC 7208 §7.3); null when longer than <see cref="MaxExpansion"/>.</summary>
    public string? Expand(SpfMacroValues values)
    {
        var result = new StringBuilder();
        foreach (var part in _parts)
        {
            if (part.Literal is not null)
            {
                result.Append(part.Literal);
            }
            else
            {
                var value = Transform(LetterValue(part.Letter, values), part);
                result.Append(part.Escape ? UrlEscape(value) : value);
            }
            if (result.Length > MaxExpansion)
            {
                return null;
            }
        }
        return result.ToString();
    }

    private static string LetterValue(char letter, SpfMacroValues v) => letter switch
    {
        's' => v.Sender,
        'l' => v.LocalPart,
        'o' => v.SenderDomain,
        'd' => v.Domain,
        'i' => DottedAddress(v.Ip),
        'p' => v.ValidatedName,
        'v' => v.Ip.AddressFamily == AddressFamily.InterNetwork ? "in-addr" : "ip6",
        'h' => v.Helo,
        'c' => v.Ip.ToString(),
        'r' => v.ReceivingHost,
        't' => v.Now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture),
        _ => throw new InvalidOperationException($"macro letter '{letter}' passed parsing"),
    };

    // RFC 7208 §7.3: split on the delimiters, reverse if asked, keep the right-hand parts, join with ".".
    private static string Transform(string value, Part part)
    {
        var pieces = value.Split(part.Delimiters.ToCharArray());
        if (part.Reverse)
        {
            Array.Reverse(pieces);
        }
        if (part.Keep > 0 && part.Keep < pieces.Length)
        {
            pieces = pieces[^part.Keep..];
        }
        return string.Join('.', pieces);
    }

    /// <summary>
    /// The "i" form of an address: dotted quad for IPv4, and for IPv6 the 32 nibbles separated by dots
    /// (RFC 7208 §7.3), in lower case as in the §7.4 examples.
    /// </summary>
    internal static string DottedAddress(IPAddress ip)
    {
        if (ip.AddressFamily == AddressFamily.InterNetwork)
        {
            return ip.ToString();
        }
        var bytes = ip.GetAddressBytes();
        var result = new StringBuilder(63);
        foreach (var b in bytes)
        {
            if (result.Length > 0)
            {
                result.Append('.');
            }
            result.Append("0123456789abcdef"[b >> 4]).Append('.').Append("0123456789abcdef"[b & 0xF]);
        }
        return result.ToString();
    }

    /// <summary>
    /// RFC 7208 §7.3: upper-case macro letters are URL-escaped after expansion: every octet outside
    /// RFC 3986 "unreserved" (ALPHA DIGIT - . _ ~) becomes %XX.
    /// </summary>
    internal static string UrlEscape(string value)
    {
        var result = new StringBuilder(value.Length);
        foreach (var b in Encoding.UTF8.GetBytes(value))
        {
            if (b is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or >= (byte)'0' and <= (byte)'9'
                or (byte)'-' or (byte)'.' or (byte)'_' or (byte)'~')
            {
                result.Append((char)b);
            }
            else
            {
                result.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }
        return result.ToString();
    }

    // Error messages end up in logs: keep them on one printable line.
    internal static string Printable(string text)
    {
        var result = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            if (c is >= ' ' and <= '~')
            {
                result.Append(c);
            }
            else
            {
                result.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:X2}");
            }
        }
        return result.ToString();
    }

    private readonly record struct Part(string? Literal, char Letter, int Keep, bool Reverse, string Delimiters, bool Escape)
    {
        public static Part Text(string literal) => new(literal, '\0', 0, false, ".", false);
    }
}
