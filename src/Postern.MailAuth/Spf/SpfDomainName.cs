using System.Globalization;

namespace Postern.MailAuth.Spf;

/// <summary>The domain name rules of SPF: which names are checked, which can be queried.</summary>
internal static class SpfDomainName
{
    // RFC 1035 §2.3.4 as RFC 7208 uses it: 63 octets a label, 253 for the name in text form (§7.3).
    private const int MaxLabel = 63;
    private const int MaxName = 253;

    private static readonly IdnMapping Idn = new() { AllowUnassigned = false, UseStd3AsciiRules = false };

    /// <summary>
    /// RFC 7208 §7.1: toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum ).
    /// That is letters, digits and inner hyphens, and not all digits (an IP address is not a domain).
    /// </summary>
    public static bool IsToplabel(ReadOnlySpan<char> label)
    {
        if (label.IsEmpty || label[0] == '-' || label[^1] == '-')
        {
            return false;
        }
        var hasLetter = false;
        var hasHyphen = false;
        foreach (var c in label)
        {
            if (char.IsAsciiLetter(c))
            {
                hasLetter = true;
            }
            else if (c == '-')
            {
                hasHyphen = true;
            }
            else if (!char.IsAsciiDigit(c))
            {
                return false;
            }
        }
        return hasLetter || hasHyphen;
    }

    /// <summary>
    /// The &lt;domain&gt; given to check_host() as it will be queried, or null when RFC 7208 §4.3 says the
    /// result is "none": a malformed name (empty or over-long label, over-long name), a name that is not
    /// multi-label, an address literal. Internationalized names are turned into A-labels (RFC 5890).
    /// </summary>
    public static string? NormalizeIdentity(string domain)
    {
        var name = domain.EndsWith('.') ? domain[..^1] : domain;
        if (name.Any(c => c > '~'))
        {
            try
            {
                name = Idn.GetAscii(name);
            }
            catch (ArgumentException)
            {
                return null;
            }
        }
        if (name.Length is 0 or > MaxName)
        {
            return null;
        }
        var labels = name.Split('.');
        if (labels.Length < 2)
        {
            return null;
        }
        foreach (var label in labels)
        {
            // Letters, digits, hyphens, and the underscore of names like _spf.example.com.
            if (label.Length is 0 or > MaxLabel || !label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            {
                return null;
            }
        }
        return name;
    }

    /// <summary>
    /// A target name after macro expansion, ready to query, or null when no DNS query can be made of it
    /// (an empty or over-long label): such a name is treated as not existing (RFC 7208 §4.3, §4.8).
    /// A trailing dot is dropped; a name over 253 characters loses labels from the left until it fits
    /// (RFC 7208 §7.3). Non-ASCII (from the macros of an SMTPUTF8 sender) is turned into A-labels, so the
    /// resolver only ever sees ASCII; what cannot be is not queried.
    /// </summary>
    public static string? ToQueryName(string? expanded)
    {
        if (expanded is null)
        {
            return null;
        }
        var name = expanded.EndsWith('.') ? expanded[..^1] : expanded;
        if (name.Any(c => c > '~'))
        {
            try
            {
                name = Idn.GetAscii(name);
            }
            catch (ArgumentException)
            {
                return null;
            }
        }
        while (name.Length > MaxName)
        {
            var dot = name.IndexOf('.');
            if (dot < 0)
            {
                return null;
            }
            name = name[(dot + 1)..];
        }
        if (name.Length == 0)
        {
            return null;
        }
        foreach (var label in name.Split('.'))
        {
            if (label.Length is 0 or > MaxLabel)
            {
                return null;
            }
        }
        return name;
    }

    /// <summary>Whether <paramref name="name"/> is <paramref name="domain"/> or one of its subdomains (case-insensitively).</summary>
    public static bool IsSameOrSubdomain(string name, string domain)
    {
        name = name.TrimEnd('.');
        domain = domain.TrimEnd('.');
        return name.Equals(domain, StringComparison.OrdinalIgnoreCase)
            || (name.Length > domain.Length
                && name.EndsWith(domain, StringComparison.OrdinalIgnoreCase)
                && name[name.Length - domain.Length - 1] == '.');
    }
}
