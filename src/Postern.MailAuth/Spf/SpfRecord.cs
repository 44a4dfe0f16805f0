using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Postern.MailAuth.Spf;

/// <summary>The eight SPF mechanisms (RFC 7208 §5).</summary>
internal enum SpfMechanism
{
    All,
    Include,
    A,
    Mx,
    Ptr,
    Ip4,
    Ip6,
    Exists,
}

/// <summary>
/// One directive: a qualifier and a mechanism with its arguments (RFC 7208 §4.6.2). Ip4Prefix and
/// Ip6Prefix are the CIDR lengths for a, mx, ip4 and ip6 (32 and 128 when not given).
/// </summary>
internal sealed record SpfDirective(
    string Text,
    AuthResult Qualifier,
    SpfMechanism Mechanism,
    SpfMacroString? DomainSpec,
    IPAddress? Network,
    int Ip4Prefix,
    int Ip6Prefix)
{
    /// <summary>Whether evaluating this directive asks DNS, and so counts against the limit of 10 (RFC 7208 §4.6.4).</summary>
    public bool QueriesDns => Mechanism is SpfMechanism.Include or SpfMechanism.A or SpfMechanism.Mx or SpfMechanism.Ptr or SpfMechanism.Exists;
}

/// <summary>
/// A parsed SPF record (RFC 7208 §4.5, §4.6, §12): its directives in order, and the redirect= and exp=
/// modifiers. The whole record is parsed before anything is evaluated, because a syntax error anywhere
/// in it is a permerror even when an earlier mechanism would match (RFC 7208 §4.6).
/// </summary>
internal sealed partial class SpfRecord
{
    private SpfRecord(string text, IReadOnlyList<SpfDirective> directives, SpfMacroString? redirect, SpfMacroString? explanation)
    {
        Text = text;
        Directives = directives;
        Redirect = redirect;
        Explanation = explanation;
    }

    public string Text { get; }

    public IReadOnlyList<SpfDirective> Directives { get; }

    public SpfMacroString? Redirect { get; }

    public SpfMacroString? Explanation { get; }

    /// <summary>
    /// RFC 7208 §4.5: a record is an SPF record when it starts with "v=spf1" (in any case) followed by a
    /// space or the end. "v=spf10" and "v=spf1mx" are not SPF records.
    /// </summary>
    public static bool IsSpfRecord(string txt) =>
        txt.StartsWith("v=spf1", StringComparison.OrdinalIgnoreCase) && (txt.Length == 6 || txt[6] == ' ');

    /// <summary>Parses an SPF record (one that <see cref="IsSpfRecord"/> accepted); the error says what is wrong.</summary>
    public static bool TryParse(string text, [NotNullWhen(true)] out SpfRecord? record, out string error)
    {
        record = null;
        if (!IsSpfRecord(text))
        {
            error = "not an SPF record";
            return false;
        }
        // RFC 7208 §3.1, §4.6.1: a record is 7-bit ASCII and its terms are separated by spaces only;
        // a control character (CR, LF, TAB, NUL) or a non-ASCII character is a syntax error.
        foreach (var c in text)
        {
            if (c is < ' ' or > '~')
            {
                error = $"character 0x{(int)c:X2} in the record";
                return false;
            }
        }
        var directives = new List<SpfDirective>();
        SpfMacroString? redirect = null;
        SpfMacroString? explanation = null;
        foreach (var term in text[6..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var modifier = ModifierName().Match(term);
            if (modifier.Success)
            {
                var name = modifier.Groups[1].Value.ToLowerInvariant();
                var value = term[modifier.Length..];
                switch (name)
                {
                    case "redirect" or "exp":
                        // RFC 7208 §6: each of these MUST NOT appear more than once.
                        if ((name == "redirect" ? redirect : explanation) is not null)
                        {
                            error = $"{name}= appears twice";
                            return false;
                        }
                        if (!SpfMacroString.TryParseDomainSpec(value, out var spec, out var specError))
                        {
                            error = $"{name}=: {specError}";
                            return false;
                        }
                        if (name == "redirect")
                        {
                            redirect = spec;
                        }
                        else
                        {
                            explanation = spec;
                        }
                        break;
                    default:
                        // RFC 7208 §6: unknown modifiers are ignored, but must still be a valid macro-string (§12).
                        // (Terms hold no spaces, so parsing it as explanation text only admits all letters.)
                        if (!SpfMacroString.TryParse(value, explanation: true, out _, out var unknownError))
                        {
                            error = $"modifier {name}=: {unknownError}";
                            return false;
                        }
                        break;
                }
                continue;
            }
            if (!TryParseDirective(term, out var directive, out error))
            {
                return false;
            }
            directives.Add(directive);
        }
        record = new SpfRecord(text, directives, redirect, explanation);
        error = "";
        return true;
    }

    private static bool TryParseDirective(string term, [NotNullWhen(true)] out SpfDirective? directive, out string error)
    {
        directive = null;
        var qualifier = term[0] switch
        {
            '+' => AuthResult.Pass,
            '-' => AuthResult.Fail,
            '~' => AuthResult.SoftFail,
            '?' => AuthResult.Neutral,
            _ => (AuthResult?)null,
        };
        var body = qualifier is null ? term : term[1..];
        var end = body.IndexOfAny([':', '/']);
        var name = (end < 0 ? body : body[..end]).ToLowerInvariant();
        var rest = end < 0 ? "" : body[end..];
        var result = qualifier ?? AuthResult.Pass;
        SpfMacroString? spec = null;
        switch (name)
        {
            case "all":
                if (rest.Length > 0)
                {
                    error = $"'{term}': all takes no argument";
                    return false;
                }
                directive = new SpfDirective(term, result, SpfMechanism.All, null, null, 32, 128);
                break;
            case "include" or "exists":
                if (!rest.StartsWith(':') || !SpfMacroString.TryParseDomainSpec(rest[1..], out spec, out error))
                {
                    error = $"'{term}': {name} needs ':' and a domain-spec" + (rest.StartsWith(':') ? $" ({ErrorOf(rest[1..])})" : "");
                    return false;
                }
                directive = new SpfDirective(term, result, name == "include" ? SpfMechanism.Include : SpfMechanism.Exists, spec, null, 32, 128);
                break;
            case "a" or "mx":
                {
                    string? cidr;
                    if (rest.StartsWith(':'))
                    {
                        // The domain-spec may itself contain '/', so only a well-formed CIDR suffix is one.
                        var split = DomainAndDualCidr().Match(rest[1..]);
                        cidr = split.Groups["cidr"].Value;
                        if (!SpfMacroString.TryParseDomainSpec(split.Groups["spec"].Value, out spec, out var specError))
                        {
                            error = $"'{term}': {specError}";
                            return false;
                        }
                    }
                    else
                    {
                        cidr = rest;
                    }
                    if (!TryParseDualCidr(cidr, out var ip4, out var ip6))
                    {
                        error = $"'{term}': bad CIDR length '{cidr}'";
                        return false;
                    }
                    directive = new SpfDirective(term, result, name == "a" ? SpfMechanism.A : SpfMechanism.Mx, spec, null, ip4, ip6);
                    break;
                }
            case "ptr":
                if (rest.Length > 0 && (!rest.StartsWith(':') || !SpfMacroString.TryParseDomainSpec(rest[1..], out spec, out _)))
                {
                    error = $"'{term}': ptr takes only ':' and a domain-spec";
                    return false;
                }
                directive = new SpfDirective(term, result, SpfMechanism.Ptr, spec, null, 32, 128);
                break;
            case "ip4":
                {
                    var match = Ip4Network().Match(rest);
                    if (!match.Success || !IPAddress.TryParse(match.Groups["net"].Value, out var network)
                        || !TryPrefix(match.Groups["len"], 32, out var prefix))
                    {
                        error = $"'{term}': ip4 needs ':' and a dotted-quad network with an optional /0-32";
                        return false;
                    }
                    directive = new SpfDirective(term, result, SpfMechanism.Ip4, null, network, prefix, 128);
                    break;
                }
            case "ip6":
                {
                    var match = Ip6Network().Match(rest);
                    if (!match.Success || !IPAddress.TryParse(match.Groups["net"].Value, out var network)
                        || network.AddressFamily != AddressFamily.InterNetworkV6 || !TryPrefix(match.Groups["len"], 128, out var prefix))
                    {
                        error = $"'{term}': ip6 needs ':' and an IPv6 network with an optional /0-128";
                        return false;
                    }
                    directive = new SpfDirective(term, result, SpfMechanism.Ip6, null, network, 32, prefix);
                    break;
                }
            default:
                error = $"unknown mechanism '{term}'";
                return false;
        }
        error = "";
        return true;
    }

    private static string ErrorOf(string domainSpec)
    {
        SpfMacroString.TryParseDomainSpec(domainSpec, out _, out var error);
        return error;
    }

    // dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ], each without leading zeros.
    private static bool TryParseDualCidr(string text, out int ip4, out int ip6)
    {
        ip4 = 32;
        ip6 = 128;
        if (text.Length == 0)
        {
            return true;
        }
        var match = DualCidr().Match(text);
        return match.Success && TryPrefix(match.Groups["v4"], 32, out ip4) && TryPrefix(match.Groups["v6"], 128, out ip6);
    }

    private static bool TryPrefix(Group group, int max, out int prefix)
    {
        prefix = max;
        return !group.Success || (int.TryParse(group.Value, out prefix) && prefix <= max);
    }

    // name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ), then "=" (RFC 7208 §12).
    [GeneratedRegex("^([A-Za-z][A-Za-z0-9._-]*)=")]
    private static partial Regex ModifierName();

    // The shortest domain-spec followed by a CIDR suffix that reaches the end of the term.
    [GeneratedRegex("^(?<spec>.*?)(?<cidr>(?:/(?:0|[1-9][0-9]*))?(?://(?:0|[1-9][0-9]*))?)$")]
    private static partial Regex DomainAndDualCidr();

    [GeneratedRegex("^(?:/(?<v4>0|[1-9][0-9]{0,2}))?(?://(?<v6>0|[1-9][0-9]{0,2}))?$")]
    private static partial Regex DualCidr();

    // ip4-network = qnum "." qnum "." qnum "." qnum, qnum = 0-255 without leading zeros.
    [GeneratedRegex(@"^:(?<net>(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]))(?:/(?<len>0|[1-9][0-9]{0,2}))?$")]
    private static partial Regex Ip4Network();

    // ip6-network = <as per RFC 4291 §2.2>; the characters are checked here, the form by IPAddress.
    [GeneratedRegex("^:(?<net>[0-9A-Fa-f:.]+)(?:/(?<len>0|[1-9][0-9]{0,2}))?$")]
    private static partial Regex Ip6Network();
}
