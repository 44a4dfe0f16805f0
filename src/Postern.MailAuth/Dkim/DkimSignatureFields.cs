using System.Globalization;
using System.Text;
using MimeKit.Cryptography;

namespace Postern.MailAuth.Dkim;

/// <summary>
/// The tags of one DKIM-Signature field (RFC 6376 §3.5), checked. What Authentication-Results
/// reports (d=, s=, i=, the start of b=) is kept even when a later check fails.
/// </summary>
internal sealed class DkimSignatureFields
{
    public string? Domain { get; private set; }
    public string? Selector { get; private set; }
    public string? AlgorithmName { get; private set; }

    /// <summary>The AUID: i= decoded, else "@" + d= (RFC 6376 §3.5 i= default).</summary>
    public string? Identity { get; private set; }

    /// <summary>The b= value without whitespace (RFC 6008 reports its first characters as header.b).</summary>
    public string? Signature { get; private set; }

    /// <summary>Why the field cannot be evaluated (a permerror), or null.</summary>
    public string? Error { get; private set; }

    public DkimSignatureAlgorithm Algorithm { get; private set; }
    public DkimKeyType KeyType => Algorithm == DkimSignatureAlgorithm.Ed25519Sha256 ? DkimKeyType.Ed25519 : DkimKeyType.Rsa;
    public string HashName => Algorithm == DkimSignatureAlgorithm.RsaSha1 ? "sha1" : "sha256";
    public DkimCanonicalizationAlgorithm HeaderCanonicalization { get; private set; }
    public DkimCanonicalizationAlgorithm BodyCanonicalization { get; private set; }
    public string[] SignedHeaders { get; private set; } = [];
    public string BodyHash { get; private set; } = "";
    public string QueryMethods { get; private set; } = "dns/txt";

    /// <summary>The identity's domain part (after the last '@').</summary>
    public string IdentityDomain => Identity is null ? "" : Identity[(Identity.LastIndexOf('@') + 1)..];

    /// <summary>l=, or null when the whole body is signed; long.MaxValue when it overflows.</summary>
    public long? BodyLength { get; private set; }

    public long? Timestamp { get; private set; }
    public long? Expiration { get; private set; }

    /// <param name="value">The field value, unfolded or not.</param>
    /// <param name="acceptDraftVersions">Also take v=0.5 and a missing v= (RFC 4871 drafts).</param>
    public static DkimSignatureFields Parse(string value, bool acceptDraftVersions)
    {
        var f = new DkimSignatureFields();
        var tags = DkimTagList.Parse(value, out var syntax);
        if (tags is null)
        {
            f.Error = $"signature syntax: {syntax}";
            return f;
        }
        f.Domain = tags["d"];
        f.Selector = tags["s"];
        f.AlgorithmName = tags["a"];
        f.Signature = tags["b"] is { } b ? DkimTagList.Compact(b) : null;
        f.Error = f.Check(tags, acceptDraftVersions);
        return f;
    }

    private string? Check(DkimTagList tags, bool acceptDraftVersions)
    {
        // RFC 6376 §6.1.1: a signature missing a required tag, or with a version it does not know, is PERMFAIL.
        switch (tags["v"])
        {
            case "1":
                break;
            case null when acceptDraftVersions:
            case "0.5" when acceptDraftVersions:
                break;
            case null:
                return "no v= tag";
            case var v:
                return $"unsupported version v={v}";
        }
        foreach (var required in new[] { "a", "b", "bh", "d", "h", "s" })
        {
            if (string.IsNullOrEmpty(tags[required]))
            {
                return $"no {required}= tag";
            }
        }
        switch (AlgorithmName!.ToLowerInvariant())
        {
            case "rsa-sha256":
                Algorithm = DkimSignatureAlgorithm.RsaSha256;
                break;
            case "ed25519-sha256":
                Algorithm = DkimSignatureAlgorithm.Ed25519Sha256;
                break;
            case "rsa-sha1":
                Algorithm = DkimSignatureAlgorithm.RsaSha1;
                break;
            default:
                return $"unsupported algorithm a={AlgorithmName}";
        }
        if (!IsBase64(Signature!) || !IsBase64(BodyHash = DkimTagList.Compact(tags["bh"]!)))
        {
            return "b= or bh= is not base64";
        }
        if (tags["c"] is { } c)
        {
            var parts = DkimTagList.Compact(c).ToLowerInvariant().Split('/');
            if (parts.Length > 2 || Canonicalization(parts[0]) is not { } header || Canonicalization(parts.Length == 2 ? parts[1] : "simple") is not { } body)
            {
                return $"unsupported canonicalization c={c}";
            }
            HeaderCanonicalization = header;
            BodyCanonicalization = body;
        }
        SignedHeaders = DkimTagList.ColonList(tags["h"]!);
        if (SignedHeaders.Any(h => h.Length == 0 || h.Any(ch => ch is <= ' ' or > '~' or ':')))
        {
            return "h= has an empty or malformed name";
        }
        // RFC 6376 §5.4: "The From header field MUST be signed."
        if (!SignedHeaders.Contains("from", StringComparer.OrdinalIgnoreCase))
        {
            return "From is not signed (h=)";
        }
        if (tags["q"] is { } q)
        {
            QueryMethods = q;
            if (!HasDnsTxtMethod(q))
            {
                return $"unsupported query method q={q}";
            }
        }
        if (tags["i"] is { } i)
        {
            Identity = DecodeQuotedPrintable(i);
            var at = Identity?.LastIndexOf('@') ?? -1;
            if (at < 0)
            {
                return "i= is not an address";
            }
            // RFC 6376 §3.5 i=: "The domain part of the address MUST be the same as, or a subdomain of, the value of the "d=" tag."
            if (!IsSameOrSubdomain(IdentityDomain, Domain!))
            {
                return $"i= domain {IdentityDomain} is not d={Domain} or a subdomain of it";
            }
        }
        else
        {
            Identity = "@" + Domain;
        }
        if (tags["l"] is { } l)
        {
            if (!IsDigits(l))
            {
                return $"bad body length l={l}";
            }
            BodyLength = long.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out var length) ? length : long.MaxValue;
        }
        if (tags["t"] is { } t)
        {
            if (!IsDigits(t) || !long.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out var timestamp))
            {
                return $"bad timestamp t={t}";
            }
            Timestamp = timestamp;
        }
        if (tags["x"] is { } x)
        {
            if (!IsDigits(x) || !long.TryParse(x, NumberStyles.None, CultureInfo.InvariantCulture, out var expiration))
            {
                return $"bad expiration x={x}";
            }
            Expiration = expiration;
            // RFC 6376 §3.5 x=: "the value of the "x=" tag MUST be greater than the value of the "t=" tag if both are present."
            if (Timestamp is { } signed && expiration < signed)
            {
                return "x= is before t=";
            }
        }
        return null;
    }

    /// <summary>q= names DNS TXT: "dns/txt", or "dns" as the drafts before RFC 4871 wrote it.</summary>
    public static bool HasDnsTxtMethod(string methods) =>
        DkimTagList.ColonList(methods).Any(m => m.Equals("dns/txt", StringComparison.OrdinalIgnoreCase) || m.Equals("dns", StringComparison.OrdinalIgnoreCase));

    public static bool IsSameOrSubdomain(string sub, string domain) =>
        sub.TrimEnd('.').Equals(domain.TrimEnd('.'), StringComparison.OrdinalIgnoreCase) ||
        sub.TrimEnd('.').EndsWith("." + domain.TrimEnd('.'), StringComparison.OrdinalIgnoreCase);

    private static DkimCanonicalizationAlgorithm? Canonicalization(string name) => name switch
    {
        "simple" => DkimCanonicalizationAlgorithm.Simple,
        "relaxed" => DkimCanonicalizationAlgorithm.Relaxed,
        _ => null,
    };

    private static bool IsDigits(string s) => s.Length > 0 && s.All(char.IsAsciiDigit);

    private static bool IsBase64(string s) => System.Buffers.Text.Base64.IsValid(s);

    // RFC 6376 §2.11 dkim-quoted-printable: "=XX" is an octet, whitespace is folding and removed.
    private static string? DecodeQuotedPrintable(string value)
    {
        var encoded = Encoding.UTF8.GetBytes(DkimTagList.Compact(value));
        var decoded = new List<byte>(encoded.Length);
        for (var i = 0; i < encoded.Length; i++)
        {
            if (encoded[i] != '=')
            {
                decoded.Add(encoded[i]);
                continue;
            }
            if (i + 2 >= encoded.Length || !byte.TryParse(encoded.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var octet))
            {
                return null;
            }
            decoded.Add(octet);
            i += 2;
        }
        return Encoding.UTF8.GetString([.. decoded]);
    }
}
