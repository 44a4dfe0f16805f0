using System.Text;

namespace Postern.Protocol.Addresses;

/// <summary>Why an address failed to parse.</summary>
public enum AddressError
{
    None,
    Syntax,
    TooLong,
    NeedsSmtpUtf8,
}

/// <summary>
/// Parses RFC 5321 §4.1.2 paths and mailboxes, with RFC 6531 UTF-8 when the transaction allows it.
/// Strict by design: an address that is not exactly one local part, one "@" and one domain is an
/// error, so forms like <c>user@remote@local</c> never reach relay checks.
/// </summary>
public static class AddressParser
{
    // RFC 5321 §4.5.3.1.1-3.
    public const int MaxLocalPart = 64;
    public const int MaxDomain = 255;
    public const int MaxPath = 256;

    /// <summary>Parses "&lt;...&gt;" or "&lt;&gt;" for MAIL FROM. <paramref name="rest"/> is what follows the closing bracket.</summary>
    public static AddressError TryParseReversePath(string text, bool allowUtf8, out ReversePath path, out string rest)
    {
        path = ReversePath.Null;
        var error = TryParsePath(text, allowUtf8, allowEmpty: true, out var mailbox, out _, out rest);
        if (error == AddressError.None)
        {
            path = new ReversePath(mailbox);
        }
        return error;
    }

    /// <summary>Parses "&lt;...&gt;" for RCPT TO; "&lt;postmaster&gt;" alone is accepted (RFC 5321 §4.1.1.3).</summary>
    public static AddressError TryParseForwardPath(string text, bool allowUtf8, string postmasterDomain, out ForwardPath? path, out string rest)
    {
        path = null;
        rest = "";
        var trimmed = text.TrimStart();
        if (trimmed.StartsWith("<postmaster>", StringComparison.OrdinalIgnoreCase))
        {
            path = new ForwardPath(new Mailbox("postmaster", postmasterDomain, false, false), false);
            rest = trimmed["<postmaster>".Length..];
            return AddressError.None;
        }
        var error = TryParsePath(text, allowUtf8, allowEmpty: false, out var mailbox, out var routed, out rest);
        if (error == AddressError.None)
        {
            path = new ForwardPath(mailbox!, routed);
        }
        return error;
    }

    private static AddressError TryParsePath(string text, bool allowUtf8, bool allowEmpty, out Mailbox? mailbox, out bool hadRoute, out string rest)
    {
        mailbox = null;
        hadRoute = false;
        rest = "";
        var s = text.TrimStart();
        if (s.Length == 0 || s[0] != '<')
        {
            return AddressError.Syntax;
        }
        var close = FindClosingBracket(s);
        if (close < 0)
        {
            return AddressError.Syntax;
        }
        var inner = s[1..close];
        rest = s[(close + 1)..];
        if (inner.Length == 0)
        {
            return allowEmpty ? AddressError.None : AddressError.Syntax;
        }
        if (Encoding.UTF8.GetByteCount(inner) + 2 > MaxPath)
        {
            return AddressError.TooLong;
        }
        if (inner[0] == '@')
        {
            // A-d-l ":" Mailbox: a source route. Check its syntax, then ignore it (RFC 5321 §4.1.1.3).
            var colon = inner.IndexOf(':');
            if (colon < 0)
            {
                return AddressError.Syntax;
            }
            foreach (var hop in inner[..colon].Split(','))
            {
                if (hop.Length < 2 || hop[0] != '@' || !IsDomain(hop[1..], allowUtf8: false))
                {
                    return AddressError.Syntax;
                }
            }
            hadRoute = true;
            inner = inner[(colon + 1)..];
        }
        return TryParseMailbox(inner, allowUtf8, out mailbox);
    }

    /// <summary>What follows the closing bracket of the path that starts <paramref name="text"/> (quotes respected); "" without one.</summary>
    internal static string AfterPath(string text)
    {
        var s = text.TrimStart();
        if (s.Length == 0 || s[0] != '<')
        {
            return "";
        }
        var close = FindClosingBracket(s);
        return close < 0 ? "" : s[(close + 1)..];
    }

    private static int FindClosingBracket(string s)
    {
        var inQuotes = false;
        for (var i = 1; i < s.Length; i++)
        {
            var c = s[i];
            if (inQuotes)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    inQuotes = false;
                }
            }
            else if (c == '"')
            {
                inQuotes = true;
            }
            else if (c == '>')
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>Parses a bare mailbox (no angle brackets).</summary>
    public static AddressError TryParseMailbox(string text, bool allowUtf8, out Mailbox? mailbox)
    {
        mailbox = null;
        if (text.Length == 0)
        {
            return AddressError.Syntax;
        }
        var international = false;
        string local;
        int at;
        if (text[0] == '"')
        {
            var end = 1;
            var sb = new StringBuilder();
            for (; end < text.Length; end++)
            {
                var c = text[end];
                if (c == '\\')
                {
                    // RFC 5321 quoted-pairSMTP: %d92 %d32-126
                    if (end + 1 >= text.Length || text[end + 1] < 32 || text[end + 1] > 126)
                    {
                        return AddressError.Syntax;
                    }
                    sb.Append(text[++end]);
                    continue;
                }
                if (c == '"')
                {
                    break;
                }
                if (c > 127)
                {
                    if (!allowUtf8)
                    {
                        return AddressError.NeedsSmtpUtf8;
                    }
                    international = true;
                }
                else if (c < 32 || c == 127)
                {
                    return AddressError.Syntax;
                }
                sb.Append(c);
            }
            if (end >= text.Length)
            {
                return AddressError.Syntax;
            }
            at = end + 1;
            var content = sb.ToString();
            // Keep the quotes unless the content is a plain dot-string: "a.b"@x is a.b@x.
            local = IsDotString(content, allowUtf8) ? content : text[..at];
        }
        else
        {
            at = text.IndexOf('@');
            if (at <= 0)
            {
                return AddressError.Syntax;
            }
            local = text[..at];
            var check = CheckDotString(local, allowUtf8);
            if (check != AddressError.None)
            {
                return check;
            }
        }
        if (at >= text.Length || text[at] != '@')
        {
            return AddressError.Syntax;
        }
        var domain = text[(at + 1)..];
        // RFC 5321 §4.5.3.1: local part 64, domain 255, and the whole path 256 with its brackets.
        if (Encoding.UTF8.GetByteCount(local) > MaxLocalPart || Encoding.UTF8.GetByteCount(domain) > MaxDomain
            || Encoding.UTF8.GetByteCount(local) + 1 + Encoding.UTF8.GetByteCount(domain) > MaxPath - 2)
        {
            return AddressError.TooLong;
        }
        // A UTF-8 local part makes the address international whatever its domain, an address literal too.
        foreach (var c in local)
        {
            if (c > 127)
            {
                international = true;
            }
        }
        if (domain.Length > 0 && domain[0] == '[')
        {
            if (!IsAddressLiteral(domain))
            {
                return AddressError.Syntax;
            }
            mailbox = new Mailbox(local, domain, true, international);
            return AddressError.None;
        }
        foreach (var c in domain)
        {
            if (c > 127)
            {
                if (!allowUtf8)
                {
                    return AddressError.NeedsSmtpUtf8;
                }
                international = true;
            }
        }
        if (!IsDomain(domain, allowUtf8))
        {
            return AddressError.Syntax;
        }
        mailbox = new Mailbox(local, domain, false, international);
        return AddressError.None;
    }

    private static bool IsDotString(string s, bool allowUtf8) => CheckDotString(s, allowUtf8) == AddressError.None;

    private static AddressError CheckDotString(string s, bool allowUtf8)
    {
        if (s.Length == 0 || s[0] == '.' || s[^1] == '.')
        {
            return AddressError.Syntax;
        }
        var prevDot = false;
        foreach (var c in s)
        {
            if (c == '.')
            {
                if (prevDot)
                {
                    return AddressError.Syntax;
                }
                prevDot = true;
                continue;
            }
            prevDot = false;
            if (c > 127)
            {
                if (!allowUtf8)
                {
                    return AddressError.NeedsSmtpUtf8;
                }
                continue;
            }
            if (!IsAtext(c))
            {
                return AddressError.Syntax;
            }
        }
        return AddressError.None;
    }

    // RFC 5322 §3.2.3 atext.
    private static bool IsAtext(char c) =>
        c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9'
        || "!#$%&'*+-/=?^_`{|}~".Contains(c);

    /// <summary>RFC 5321 Domain: sub-domain *("." sub-domain), with U-labels under SMTPUTF8.</summary>
    public static bool IsDomain(string s, bool allowUtf8)
    {
        if (s.Length == 0 || s.Length > MaxDomain)
        {
            return false;
        }
        foreach (var label in s.Split('.'))
        {
            if (label.Length == 0 || label.Length > 63)
            {
                return false;
            }
            if (label[0] == '-' || label[^1] == '-')
            {
                return false;
            }
            foreach (var c in label)
            {
                var ok = c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '-'
                         || (allowUtf8 && c > 127 && !char.IsControl(c) && !char.IsWhiteSpace(c));
                if (!ok)
                {
                    return false;
                }
            }
        }
        return true;
    }

    /// <summary>
    /// RFC 5321 §4.1.3 IPv6-addr: full (8 groups), or compressed where "::" stands for at least two
    /// groups (so at most 6 others), each optionally ending in an IPv4 address worth two groups.
    /// </summary>
    private static bool IsIPv6Literal(string s)
    {
        if (!System.Net.IPAddress.TryParse(s, out var a) || a.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6 || s.Contains('%'))
        {
            return false;
        }
        var v4 = s.Contains('.');
        var halves = s.Split("::");
        if (halves.Length > 2)
        {
            return false;
        }
        var groups = halves.Sum(h => h.Length == 0 ? 0 : h.Split(':').Length) + (v4 ? 1 : 0);
        return halves.Length == 1 ? groups == 8 : groups <= 6;
    }

    /// <summary>RFC 5321 §4.1.3 address-literal: [IPv4] or [IPv6:...].</summary>
    public static bool IsAddressLiteral(string s)
    {
        if (s.Length < 3 || s[0] != '[' || s[^1] != ']')
        {
            return false;
        }
        var inner = s[1..^1];
        if (inner.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase))
        {
            return IsIPv6Literal(inner[5..]);
        }
        var parts = inner.Split('.');
        if (parts.Length != 4)
        {
            return false;
        }
        foreach (var p in parts)
        {
            if (p.Length is 0 or > 3 || !p.All(char.IsAsciiDigit) || int.Parse(p, System.Globalization.CultureInfo.InvariantCulture) > 255)
            {
                return false;
            }
        }
        return true;
    }
}
