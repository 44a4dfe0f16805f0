using Postern.MailAuth.PublicSuffix;

namespace Postern.MailAuth.Dmarc;

/// <summary>Identifier alignment (RFC 7489 §3.1) and the domain form it compares.</summary>
public static class DmarcAlignment
{
    /// <summary>
    /// True when <paramref name="authenticated"/> (a DKIM d= or the MAIL FROM domain) aligns with the
    /// Author Domain <paramref name="author"/>. Strict: the names are identical (RFC 7489 §3.1.1,
    /// §3.1.2). Relaxed: their Organizational Domains (§3.2) are identical; a name that is itself a
    /// public suffix is its own Organizational Domain. Names are compared as lower-case A-labels; a
    /// name that is not a valid domain aligns with nothing. Only whole labels count: oooo.com does not
    /// align with ooo.com.
    /// </summary>
    public static bool IsAligned(string? authenticated, string? author, AlignmentMode mode, PublicSuffixList publicSuffixes)
    {
        ArgumentNullException.ThrowIfNull(publicSuffixes);
        var a = Normalize(authenticated);
        var b = Normalize(author);
        if (a is null || b is null)
        {
            return false;
        }
        if (a == b)
        {
            return true;
        }
        return mode == AlignmentMode.Relaxed && OrganizationalDomain(a, publicSuffixes) == OrganizationalDomain(b, publicSuffixes);
    }

    /// <summary>
    /// The form DMARC compares and looks up: lower-case A-labels, leading and trailing dots dropped
    /// (OpenDMARC tolerates ".mac.com." and "....mac.com...."; a trailing dot is DNS's root anyway),
    /// each label 1 to 63 characters, 253 in all. Null when that is not possible ("mac...com", an
    /// address literal, an invalid IDN).
    /// </summary>
    public static string? Normalize(string? domain)
    {
        if (domain is null)
        {
            return null;
        }
        var trimmed = domain.Trim().Trim('.');
        if (trimmed.Length == 0 || trimmed.AsSpan().ContainsAny("[]@ \t\r\n"))
        {
            return null;
        }
        var ascii = DomainName.ToAscii(trimmed);
        return ascii is not null && DomainName.IsValidLength(ascii) ? ascii : null;
    }

    /// <summary>RFC 7489 §3.2 for a normalized name: the registrable domain, or the name itself when it is a public suffix.</summary>
    internal static string OrganizationalDomain(string normalized, PublicSuffixList publicSuffixes) =>
        publicSuffixes.OrganizationalDomainOfAscii(normalized) ?? normalized;
}
