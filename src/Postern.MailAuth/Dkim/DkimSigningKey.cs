using System.Security.Cryptography;
using Org.BouncyCastle.Asn1;
using Org.BouncyCastle.Asn1.Pkcs;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Security;
using Org.BouncyCastle.X509;

namespace Postern.MailAuth.Dkim;

/// <summary>
/// The TXT record that publishes a key: its DNS name and value, and the value cut into the
/// character-strings of at most 255 octets one TXT record is made of (RFC 1035 §3.3.14; a 2048-bit
/// RSA key needs two), which resolvers join without separator (RFC 6376 §3.6.2.2).
/// </summary>
public sealed record DkimTxtRecord(string Name, string Value)
{
    public IReadOnlyList<string> Strings => Value.Chunk(255).Select(c => new string(c)).ToList();

    /// <summary>The record as a zone file line: <c>sel._domainkey.example.com. IN TXT "v=DKIM1; ..." "..."</c>.</summary>
    public string ZoneFileLine => $"{Name}. IN TXT {string.Join(' ', Strings.Select(s => $"\"{s}\""))}";
}

/// <summary>
/// A private key that signs for one domain under one selector. Read from files only by
/// <see cref="DkimKeyStore"/>; <see cref="Parse"/> reads the text of one.
/// </summary>
public sealed class DkimSigningKey
{
    private DkimSigningKey(string domain, string selector, AsymmetricKeyParameter privateKey, AsymmetricKeyParameter publicKey, string? path)
    {
        Domain = domain;
        Selector = selector;
        PrivateKey = privateKey;
        PublicKey = publicKey;
        Path = path;
    }

    /// <summary>d=, lower case, A-labels.</summary>
    public string Domain { get; }

    /// <summary>s=, lower case.</summary>
    public string Selector { get; }

    /// <summary>The file it came from, when it came from one.</summary>
    public string? Path { get; }

    public DkimKeyType KeyType => PrivateKey is Ed25519PrivateKeyParameters ? DkimKeyType.Ed25519 : DkimKeyType.Rsa;

    /// <summary>The a= this key signs with: rsa-sha256 or ed25519-sha256.</summary>
    public string Algorithm => KeyType == DkimKeyType.Ed25519 ? "ed25519-sha256" : "rsa-sha256";

    /// <summary>RSA modulus size, or 256 for Ed25519.</summary>
    public int KeyBits => PublicKey is RsaKeyParameters rsa ? rsa.Modulus.BitLength : 256;

    internal AsymmetricKeyParameter PrivateKey { get; }

    internal AsymmetricKeyParameter PublicKey { get; }

    /// <summary>The key record to publish (RFC 6376 §3.6.1; RFC 8463 §4.2 for the raw ed25519 key).</summary>
    public DkimTxtRecord TxtRecord
    {
        get
        {
            var p = PublicKey is Ed25519PublicKeyParameters ed
                ? Convert.ToBase64String(ed.GetEncoded())
                : Convert.ToBase64String(SubjectPublicKeyInfoFactory.CreateSubjectPublicKeyInfo(PublicKey).GetEncoded());
            var k = KeyType == DkimKeyType.Ed25519 ? "ed25519" : "rsa";
            return new DkimTxtRecord($"{Selector}._domainkey.{Domain}", $"v=DKIM1; k={k}; p={p}");
        }
    }

    /// <summary>
    /// Reads a private key: PEM "PRIVATE KEY" (PKCS#8, RSA or Ed25519, as <c>openssl genpkey</c>
    /// and <c>postern dkim keygen</c> write), PEM "RSA PRIVATE KEY" (PKCS#1, as <c>openssl genrsa</c>
    /// and <c>opendkim-genkey</c> write), or the bare base64 32-octet Ed25519 seed dkimpy uses.
    /// RSA keys shorter than 1024 bits are refused (RFC 8301 §3.2: "Signers MUST use RSA keys of at
    /// least 1024 bits").
    /// </summary>
    /// <exception cref="FormatException">The text is none of these.</exception>
    public static DkimSigningKey Parse(string domain, string selector, string text, string? path = null)
    {
        var privateKey = ReadPrivateKey(text);
        AsymmetricKeyParameter publicKey = privateKey switch
        {
            RsaPrivateCrtKeyParameters rsa => new RsaKeyParameters(false, rsa.Modulus, rsa.PublicExponent),
            Ed25519PrivateKeyParameters ed => ed.GeneratePublicKey(),
            _ => throw new FormatException("not an RSA or Ed25519 private key"),
        };
        if (publicKey is RsaKeyParameters { Modulus.BitLength: < 1024 } shortKey)
        {
            throw new FormatException($"the RSA key has {shortKey.Modulus.BitLength} bits; DKIM needs at least 1024 (RFC 8301)");
        }
        return new DkimSigningKey(domain.ToLowerInvariant(), selector.ToLowerInvariant(), privateKey, publicKey, path);
    }

    /// <summary>A new key: RSA of <paramref name="rsaBits"/> bits, or Ed25519; its PEM text (PKCS#8).</summary>
    public static (DkimSigningKey Key, string Pem) Generate(string domain, string selector, DkimKeyType type, int rsaBits = 2048)
    {
        byte[] pkcs8;
        if (type == DkimKeyType.Rsa)
        {
            using var rsa = RSA.Create(rsaBits);
            pkcs8 = rsa.ExportPkcs8PrivateKey();
        }
        else
        {
            var seed = new Ed25519PrivateKeyParameters(new SecureRandom());
            pkcs8 = Org.BouncyCastle.Pkcs.PrivateKeyInfoFactory.CreatePrivateKeyInfo(seed).GetEncoded();
        }
        var pem = PemEncoding.WriteString("PRIVATE KEY", pkcs8) + "\n";
        CryptographicOperations.ZeroMemory(pkcs8);
        return (Parse(domain, selector, pem), pem);
    }

    private static AsymmetricKeyParameter ReadPrivateKey(string text)
    {
        var trimmed = text.Trim();
        if (!trimmed.StartsWith("-----", StringComparison.Ordinal))
        {
            // dkimpy's Ed25519 key file: the 32-octet seed in base64 (RFC 8032 §5.1.5).
            try
            {
                var seed = Convert.FromBase64String(trimmed);
                return seed.Length == Ed25519PrivateKeyParameters.KeySize ? new Ed25519PrivateKeyParameters(seed) : throw new FormatException("not a PEM key nor a 32-octet Ed25519 seed");
            }
            catch (FormatException)
            {
                throw new FormatException("not a PEM key nor a base64 Ed25519 seed");
            }
        }
        if (!PemEncoding.TryFind(trimmed, out var fields))
        {
            throw new FormatException("malformed PEM");
        }
        var label = trimmed[fields.Label];
        var der = Convert.FromBase64String(trimmed[fields.Base64Data]);
        try
        {
            return label switch
            {
                "PRIVATE KEY" => PrivateKeyFactory.CreateKey(der),
                "RSA PRIVATE KEY" => RsaKey(RsaPrivateKeyStructure.GetInstance(Asn1Object.FromByteArray(der))),
                "ENCRYPTED PRIVATE KEY" => throw new FormatException("encrypted keys are not supported; the server must read the key unattended"),
                _ => throw new FormatException($"unexpected PEM label {label}"),
            };
        }
        catch (Exception e) when (e is ArgumentException or InvalidCastException or IOException or SecurityUtilityException or Asn1Exception)
        {
            throw new FormatException($"unreadable {label}: {e.Message}", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(der);
        }
    }

    private static RsaPrivateCrtKeyParameters RsaKey(RsaPrivateKeyStructure k) =>
        new(k.Modulus, k.PublicExponent, k.PrivateExponent, k.Prime1, k.Prime2, k.Exponent1, k.Exponent2, k.Coefficient);
}
