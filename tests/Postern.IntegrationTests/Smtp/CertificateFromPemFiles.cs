using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Listening;

namespace Postern.IntegrationTests.Smtp;

/// <summary>Issue 2: the certificate comes from PEM files (Tls.CertificatePath, Tls.KeyPath); TLS 1.2 and 1.3 only.</summary>
public sealed class CertificateFromPemFiles
{
    [Fact]
    public async Task StartTlsPresentsTheConfiguredCertificate()
    {
        var pemDir = TestServer.NewDataDir();
        var cert = Path.Combine(pemDir, "fullchain.pem");
        var key = Path.Combine(pemDir, "privkey.pem");
        TlsCertificates.Generate("pem.example.test", cert, key);
        await using var server = await TestServer.StartAsync(o => o.Tls = new() { CertificatePath = cert, KeyPath = key });
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        await c.StartTlsAsync();
        Assert.Equal("CN=pem.example.test", c.Tls!.RemoteCertificate!.Subject);
        Assert.True(c.Tls.SslProtocol is System.Security.Authentication.SslProtocols.Tls13 or System.Security.Authentication.SslProtocols.Tls12);
        Assert.StartsWith("250", await c.CommandAsync("EHLO client.example"));
    }

    [Fact]
    public async Task OldTlsVersionsAreRefused()
    {
        await using var server = await TestServer.StartAsync();
        var result = await Peers.RunAsync("openssl", ["s_client", "-connect", $"127.0.0.1:{server.SubmissionsPort}", "-tls1_1", "-brief"], stdin: "");
        Assert.NotEqual(0, result.ExitCode);
        var modern = await Peers.RunAsync("openssl", ["s_client", "-connect", $"127.0.0.1:{server.SubmissionsPort}", "-tls1_2", "-brief"], stdin: "QUIT\n");
        Assert.Contains("Protocol version: TLSv1.2", modern.All);
    }
}
