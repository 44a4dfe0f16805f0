using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>Certificates made in the test (CertificateRequest), written as PEM files, and the one a server serves.</summary>
internal static class TlsTestCertificates
{
    /// <summary>A PEM pair: <see cref="CertPem"/> is the leaf, then its chain; <see cref="Fingerprint"/> the leaf's SHA-256.</summary>
    public sealed record Pair(string CertPem, string KeyPem, string Fingerprint)
    {
        /// <summary>Rewrites both files in place (truncate and write), certificate first, as a careless renewal script would.</summary>
        public void WriteTo(string certPath, string keyPath)
        {
            File.WriteAllText(certPath, CertPem);
            File.WriteAllText(keyPath, KeyPem);
        }
    }

    /// <summary>A self-signed certificate for <paramref name="name"/> and localhost (ECDSA P-256 unless <paramref name="rsa"/>).</summary>
    public static Pair SelfSigned(string name, bool rsa = false, TimeSpan? validFor = null)
    {
        using AsymmetricAlgorithm key = rsa ? RSA.Create(2048) : ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = Request(name, key);
        var now = DateTimeOffset.UtcNow;
        using var cert = request.CreateSelfSigned(now.AddMinutes(-5), now + (validFor ?? TimeSpan.FromDays(90)));
        return new Pair(cert.ExportCertificatePem() + "\n", ExportKey(key), cert.GetCertHashString(HashAlgorithmName.SHA256));
    }

    /// <summary>
    /// A leaf for <paramref name="name"/> issued by a fresh intermediate CA called <paramref name="intermediate"/>
    /// (itself issued by a root); the certificate file holds the leaf and the intermediate, as certbot's
    /// fullchain.pem does. (A self-signed root is never sent in a handshake, so it would not show.)
    /// </summary>
    public static Pair Chained(string name, string intermediate)
    {
        var now = DateTimeOffset.UtcNow;
        using var rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var root = CaRequest("Test Root", rootKey).CreateSelfSigned(now.AddDays(-1), now.AddYears(2));
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var caPublic = CaRequest(intermediate, caKey).Create(root, now.AddDays(-1), now.AddYears(1), RandomNumberGenerator.GetBytes(12));
        using var ca = caPublic.CopyWithPrivateKey(caKey);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var leaf = Request(name, key).Create(ca, now.AddMinutes(-5), now.AddDays(90), RandomNumberGenerator.GetBytes(12));
        return new Pair(leaf.ExportCertificatePem() + "\n" + ca.ExportCertificatePem() + "\n", ExportKey(key), leaf.GetCertHashString(HashAlgorithmName.SHA256));
    }

    private static CertificateRequest CaRequest(string name, ECDsa key)
    {
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        return request;
    }

    private static CertificateRequest Request(string name, AsymmetricAlgorithm key)
    {
        var request = key is RSA r
            ? new CertificateRequest($"CN={name}", r, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            : new CertificateRequest($"CN={name}", (ECDsa)key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(name);
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        return request;
    }

    private static string ExportKey(AsymmetricAlgorithm key) => key.ExportPkcs8PrivateKeyPem() + "\n";

    /// <summary>STARTTLS on <paramref name="port"/>: the SHA-256 of the certificate the server presents.</summary>
    public static async Task<string> ServedOverStartTlsAsync(int port)
    {
        await using var c = await RawSmtp.OpenAsync(port);
        await c.StartTlsAsync();
        return c.Tls!.RemoteCertificate!.GetCertHashString(HashAlgorithmName.SHA256);
    }

    /// <summary>Implicit TLS on <paramref name="port"/> (the submissions role): the SHA-256 of the certificate presented.</summary>
    public static async Task<string> ServedOverImplicitTlsAsync(int port)
    {
        await using var c = await RawSmtp.ConnectAsync(port, implicitTls: true);
        await c.ExpectAsync(220);
        return c.Tls!.RemoteCertificate!.GetCertHashString(HashAlgorithmName.SHA256);
    }
}
