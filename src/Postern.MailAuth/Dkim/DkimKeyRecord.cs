using Org.BouncyCastle.Asn1;
using Org.BouncyCastle.Asn1.X509;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Security;

namespace Postern.MailAuth.Dkim;

/// <summary>The key types of the k= tag: RSA (RFC 6376 §3.3.1) and Ed25519 (RFC 8463).</summary>
public enum DkimKeyType
{
    Rsa,
    Ed25519,
}

/// <summary>
/// A DKIM key record, the TXT record at selector._domainkey.domain (RFC 6376 §3.6.1, RFC 8463 §4).
/// Tags read: v= (must be first and "DKIM1" when present), h= (acceptable hashes), k= (rsa, ed25519),
/// s= (service: * or email), t= (y: testing, s: no subdomains in i=), p= (the key; empty means
/// revoked). n= and unknown tags are ignored, and so is g=: RFC 4871's granularity tag was removed
/// by RFC 6376 (Appendix C.1), so a record that still carries one is read as if it did not.
/// </summary>
public sealed class DkimKeyRecord
{
    private DkimKeyRecord(DkimKeyType keyType, AsymmetricKeyParameter? publicKey, IReadOnlyList<string>? hashes, bool testing, bool strictIdentity)
    {
        KeyType = keyType;
        PublicKey = publicKey;
        HashAlgorithms = hashes;
        Testing = testing;
        StrictIdentity = strictIdentity;
    }

    public DkimKeyType KeyType { get; }

    /// <summary>The public key; null when the record revokes it (empty p=).</summary>
    public AsymmetricKeyParameter? PublicKey { get; }

    /// <summary>RFC 6376 §3.6.1: "An empty value means that this public key has been revoked."</summary>
    public bool Revoked => PublicKey is null;

    /// <summary>The h= hash algorithms (lower case, unknown ones kept), or null when the record allows all.</summary>
    public IReadOnlyList<string>? HashAlgorithms { get; }

    /// <summary>t=y: the domain is testing DKIM.</summary>
    public bool Testing { get; }

    /// <summary>t=s: the i= domain must be d= itself, not a subdomain.</summary>
    public bool StrictIdentity { get; }

    /// <summary>The modulus size of an RSA key, 256 for Ed25519, 0 when revoked.</summary>
    public int KeyBits => PublicKey switch
    {
        RsaKeyParameters rsa => rsa.Modulus.BitLength,
        Ed25519PublicKeyParameters => 256,
        _ => 0,
    };

    /// <summary>Whether h= lets the key be used with this hash ("sha256", "sha1").</summary>
    public bool AllowsHash(string hash) => HashAlgorithms is null || HashAlgorithms.Contains(hash, StringComparer.OrdinalIgnoreCase);

    /// <summary>Parses a key record (the TXT strings already joined); null and the reason when it is not a usable one.</summary>
    public static DkimKeyRecord? Parse(string text, out string? error)
    {
        var tags = DkimTagList.Parse(text, out error);
        if (tags is null)
        {
            error = $"key record syntax: {error}";
            return null;
        }
        // RFC 6376 §3.6.1 v=: "This tag MUST be the first tag in the record. Records beginning with a
        // "v=" tag with any other value MUST be discarded."
        if (tags["v"] is { } v && (v != "DKIM1" || tags.Order[0] != "v"))
        {
            error = tags.Order[0] == "v" ? $"key record version v={v} is not DKIM1" : "key record v= is not the first tag";
            return null;
        }
        var keyType = tags["k"] ?? "rsa";
        DkimKeyType type;
        if (keyType.Equals("rsa", StringComparison.OrdinalIgnoreCase))
        {
            type = DkimKeyType.Rsa;
        }
        else if (keyType.Equals("ed25519", StringComparison.OrdinalIgnoreCase))
        {
            type = DkimKeyType.Ed25519;
        }
        else
        {
            error = $"unsupported key type k={keyType}";
            return null;
        }
        // s=: "*" or a list that includes "email"; a key for other services must not verify mail.
        if (tags["s"] is { } services && !DkimTagList.ColonList(services).Any(s => s == "*" || s.Equals("email", StringComparison.OrdinalIgnoreCase)))
        {
            error = $"key is not for email (s={services})";
            return null;
        }
        var flags = tags["t"] is { } t ? DkimTagList.ColonList(t) : [];
        var hashes = tags["h"] is { } h ? DkimTagList.ColonList(h).Select(x => x.ToLowerInvariant()).ToList() : null;
        if (tags["p"] is not { } p)
        {
            error = "key record has no p= tag";
            return null;
        }
        p = DkimTagList.Compact(p);
        AsymmetricKeyParameter? key = null;
        if (p.Length > 0)
        {
            byte[] data;
            try
            {
                data = Convert.FromBase64String(p);
            }
            catch (FormatException)
            {
                error = "key record p= is not base64";
                return null;
            }
            key = type == DkimKeyType.Rsa ? RsaKey(data) : Ed25519Key(data);
            if (key is null)
            {
                error = type == DkimKeyType.Rsa ? "key record p= is not an RSA public key" : data.Length != 32 ? $"key record p= is not an Ed25519 public key ({data.Length} octets, not 32)" : "key record p= is not an Ed25519 public key";
                return null;
            }
        }
        return new DkimKeyRecord(type, key, hashes, flags.Contains("y"), flags.Contains("s"));
    }

    // RFC 6376 §3.6.1 says SubjectPublicKeyInfo; some publishers put the bare PKCS#1 RSAPublicKey
    // there, and verifiers commonly accept it (the mail-auth suite has such a record).
    private static RsaKeyParameters? RsaKey(byte[] der)
    {
        try
        {
            return PublicKeyFactory.CreateKey(SubjectPublicKeyInfo.GetInstance(Asn1Object.FromByteArray(der))) as RsaKeyParameters;
        }
        catch (Exception e) when (e is ArgumentException or InvalidCastException or IOException or InvalidOperationException or SecurityUtilityException or Asn1Exception)
        {
        }
        try
        {
            var pkcs1 = RsaPublicKeyStructure.GetInstance(Asn1Object.FromByteArray(der));
            return new RsaKeyParameters(false, pkcs1.Modulus, pkcs1.PublicExponent);
        }
        catch (Exception e) when (e is ArgumentException or InvalidCastException or IOException or InvalidOperationException or Asn1Exception)
        {
            return null;
        }
    }

    // RFC 8463 §4.2: the ed25519 p= is the raw 32-octet public key, not a SubjectPublicKeyInfo.
    private static Ed25519PublicKeyParameters? Ed25519Key(byte[] data)
    {
        if (data.Length != Ed25519PublicKeyParameters.KeySize)
        {
            return null;
        }
        try
        {
            return new Ed25519PublicKeyParameters(data);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }
}
