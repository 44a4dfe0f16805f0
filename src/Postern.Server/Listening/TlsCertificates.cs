using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Postern.Server.Configuration;
using Postern.Server.Storage;

namespace Postern.Server.Listening;

/// <summary>
/// The server certificate: from PEM files, or generated once under DATA/tls for --dev
/// (SPEC §1, §3), and the TLS settings every listener shares. TLS 1.2 and 1.3 only (RFC 8996
/// retired the older versions), with an explicit list of modern cipher suites. Reloading the files
/// when they change is <see cref="CertificateReloader"/>'s work.
/// </summary>
public static class TlsCertificates
{
    public const SslProtocols Protocols = SslProtocols.Tls12 | SslProtocols.Tls13;

    /// <summary>
    /// The cipher suites offered, in order of preference: the TLS 1.3 AEAD suites, and for TLS 1.2
    /// only ECDHE key exchange (forward secrecy) with AES-GCM or ChaCha20-Poly1305 (Mozilla's
    /// "intermediate" list without DHE; RFC 9325 §4.2). No CBC (Lucky 13, POODLE-style padding
    /// oracles), no static-RSA key exchange (no forward secrecy, ROBOT), no SHA-1 MACs.
    /// On port 25 a sender that can do none of these falls back to plain text (RFC 7435), as it
    /// would without TLS at all; every MTA and client of the last ten years has one of them.
    /// </summary>
    public static readonly IReadOnlyList<TlsCipherSuite> CipherSuites =
    [
        TlsCipherSuite.TLS_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TlsCipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];

    /// <summary>
    /// The options the listeners hand to every handshake. The certificate context is the one
    /// property that changes later: <see cref="CertificateReloader"/> replaces it (a reference
    /// assignment; SslStream copies the options when a handshake starts, so a handshake under way
    /// and an established session keep the certificate they began with).
    /// </summary>
    public static SslServerAuthenticationOptions ServerOptions(SslStreamCertificateContext certificate) => new()
    {
        ServerCertificateContext = certificate,
        EnabledSslProtocols = Protocols,
        // CipherSuitesPolicy is OpenSSL's cipher string; on Windows and macOS the system's own list applies.
        CipherSuitesPolicy = OperatingSystem.IsLinux() ? new CipherSuitesPolicy(CipherSuites) : null,
        // Client-initiated TLS 1.2 renegotiation costs the server a handshake each time for nothing
        // SMTP needs (a CPU exhaustion vector); TLS 1.3 has none.
        AllowRenegotiation = false,
        ClientCertificateRequired = false,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
    };

    /// <summary>The certificate and key files, after generating the --dev certificate when it does not exist yet.</summary>
    public static (string Cert, string Key) Prepare(PosternOptions options)
    {
        var (certPath, keyPath) = Paths(options);
        if (options.Tls.Generate && !File.Exists(certPath))
        {
            Generate(options.Hostname, certPath, keyPath);
        }
        return (certPath, keyPath);
    }

    /// <summary>
    /// Reads a PEM pair: the first certificate of <paramref name="certPath"/> is the leaf, the rest
    /// its chain. Throws (IOException, CryptographicException) when a file is missing, unreadable or
    /// not PEM, or when the key is not the leaf's.
    /// </summary>
    public static ServedCertificate Load(string certPath, string keyPath)
    {
        // Both files are read once, into memory, so that the leaf and the chain come from the same bytes.
        var certPem = File.ReadAllText(certPath);
        var keyPem = File.ReadAllText(keyPath);
        // CreateFromPem checks that the key belongs to the certificate ("does not match the public key").
        var leaf = X509Certificate2.CreateFromPem(certPem, keyPem);
        var chain = new X509Certificate2Collection();
        chain.ImportFromPem(certPem);
        var intermediates = new X509Certificate2Collection();
        foreach (var c in chain)
        {
            if (c.Thumbprint != leaf.Thumbprint)
            {
                intermediates.Add(c);
            }
        }
        return new ServedCertificate(SslStreamCertificateContext.Create(leaf, intermediates, offline: true), leaf);
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

/// <summary>A loaded certificate: what handshakes use, and what the logs say about it.</summary>
public sealed record ServedCertificate(SslStreamCertificateContext Context, X509Certificate2 Leaf)
{
    public string Subject => Leaf.Subject;

    /// <summary>SHA-256 of the certificate, in hex: what `openssl x509 -fingerprint -sha256` prints, without the colons.</summary>
    public string Fingerprint { get; } = Leaf.GetCertHashString(HashAlgorithmName.SHA256);

    public DateTimeOffset NotAfter => new(Leaf.NotAfter.ToUniversalTime(), TimeSpan.Zero);

    /// <summary>NotAfter as a log token.</summary>
    public string NotAfterText => NotAfter.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
}
