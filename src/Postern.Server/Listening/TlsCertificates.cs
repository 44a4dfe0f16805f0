using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Postern.Server.Configuration;
using Postern.Server.Queue;

namespace Postern.Server.Listening;

/// <summary>
/// The server certificate: from PEM files, or generated once under DATA/tls for --dev
/// (SPEC §1, §3). TLS 1.2 and 1.3 only (RFC 8996 retired the older versions).
/// </summary>
public static class TlsCertificates
{
    public const SslProtocols Protocols = SslProtocols.Tls12 | SslProtocols.Tls13;

    /// <summary>Loads (or first generates) the certificate and returns ready-made server options.</summary>
    public static SslServerAuthenticationOptions ServerOptions(PosternOptions options)
    {
        var (certPath, keyPath) = Paths(options);
        if (options.Tls.Generate && !File.Exists(certPath))
        {
            Generate(options.Hostname, certPath, keyPath);
        }
        var chain = new X509Certificate2Collection();
        chain.ImportFromPemFile(certPath);
        var leaf = X509Certificate2.CreateFromPemFile(certPath, keyPath);
        var intermediates = new X509Certificate2Collection();
        foreach (var c in chain)
        {
            if (c.Thumbprint != leaf.Thumbprint)
            {
                intermediates.Add(c);
            }
        }
        return new SslServerAuthenticationOptions
        {
            ServerCertificateContext = SslStreamCertificateContext.Create(leaf, intermediates, offline: true),
            EnabledSslProtocols = Protocols,
            ClientCertificateRequired = false,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        };
    }

    public static (string Cert, string Key) Paths(PosternOptions options) => options.Tls.Generate && string.IsNullOrEmpty(options.Tls.CertificatePath)
        ? (Path.Combine(options.DataDirectory, "tls", "cert.pem"), Path.Combine(options.DataDirectory, "tls", "key.pem"))
        : (options.ResolvePath(options.Tls.CertificatePath!), options.ResolvePath(options.Tls.KeyPath!));

    /// <summary>A self-signed ECDSA P-256 certificate for the host name, localhost and loopback, valid one year.</summary>
    public static void Generate(string hostname, string certPath, string keyPath)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(certPath)!);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={hostname}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(hostname);
        if (hostname != "localhost")
        {
            san.AddDnsName("localhost");
        }
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        var now = DateTimeOffset.UtcNow;
        using var cert = request.CreateSelfSigned(now.AddMinutes(-5), now.AddYears(1));
        SafeFile.WriteAllBytes(keyPath, Encoding.ASCII.GetBytes(key.ExportPkcs8PrivateKeyPem()), Durability.Instance);
        SafeFile.WriteAllBytes(certPath, Encoding.ASCII.GetBytes(cert.ExportCertificatePem()), Durability.Instance,
            UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
    }
}
