using System.Globalization;

namespace Postern.MailAuth.PublicSuffix;

/// <summary>
/// Domain names in the one form the Public Suffix List and DMARC compare: A-labels (punycode),
/// lower case, no empty label. RFC 5890 §2.3.2.1: a U-label and its A-label are the same name.
/// </summary>
internal static class DomainName
{
    /// <summary>RFC 1035 §2.3.4: at most 255 octets on the wire, so 253 characters written out.</summary>
    public const int MaxLength = 253;

    /// <summary>
    /// The A-label, lower-case form of <paramref name="name"/>; null when it is empty, has an empty
    /// label (a leading, trailing or doubled dot) or is not a valid IDN.
    /// </summary>
    public static string? ToAscii(string? name)
    {
        if (string.IsNullOrEmpty(name))
        {
            return null;
        }
        string ascii;
        if (IsAscii(name))
        {
            ascii = name.ToLowerInvariant();
        }
        else
        {
            try
            {
                // IdnMapping is not documented as thread-safe for instance calls; one per call is cheap
                // and only non-ASCII names come here.
                ascii = new IdnMapping().GetAscii(name).ToLowerInvariant();
            }
            catch (ArgumentException)
            {
                return null;
            }
        }
        return HasEmptyLabel(ascii) ? null : ascii;
    }

    /// <summary>The U-label form of an A-label name, for callers that gave a Unicode name.</summary>
    public static string ToUnicode(string ascii)
    {
        try
        {
            return new IdnMapping().GetUnicode(ascii);
        }
        catch (ArgumentException)
        {
            return ascii;
        }
    }

    public static bool IsAscii(string s)
    {
        foreach (var c in s)
        {
            if (c > 0x7F)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>True when the name is a valid host name for DNS: labels of 1 to 63 characters, 253 in all.</summary>
    public static bool IsValidLength(string ascii)
    {
        if (ascii.Length > MaxLength)
        {
            return false;
        }
        var start = 0;
        while (true)
        {
            var dot = ascii.IndexOf('.', start);
            var length = (dot < 0 ? ascii.Length : dot) - start;
            if (length is < 1 or > 63)
            {
                return false;
            }
            if (dot < 0)
            {
                return true;
            }
            start = dot + 1;
        }
    }

    /// <summary>The number of labels in a name without empty labels.</summary>
    public static int LabelCount(ReadOnlySpan<char> name) => name.Count('.') + 1;

    /// <summary>The last <paramref name="count"/> labels of <paramref name="name"/> (all of it when it has no more).</summary>
    public static string LastLabels(string name, int count)
    {
        var start = name.Length;
        for (var i = 0; i < count; i++)
        {
            var dot = start == 0 ? -1 : name.LastIndexOf('.', start - 1);
            if (dot < 0)
            {
                return name;
            }
            start = dot;
        }
        return name[(start + 1)..];
    }

    private static bool HasEmptyLabel(string name) =>
        name.Length == 0 || name[0] == '.' || name[^1] == '.' || name.Contains("..", StringComparison.Ordinal);
}
