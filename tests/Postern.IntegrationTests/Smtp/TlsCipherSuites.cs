using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 4 item 7: TLS 1.2 and 1.3 only, with the modern cipher list of TlsCertificates.CipherSuites,
/// checked with a real peer (openssl s_client) that offers exactly one suite or one version at a time.
/// </summary>
public sealed class TlsCipherSuites
{
    [Fact]
    public async Task WithAnRsaCertificateOnlyEcdheWithAeadIsAccepted()
    {
        var dir = TestServer.NewDataDir();
        var (cert, key) = (Path.Combine(dir, "fullchain.pem"), Path.Combine(dir, "privkey.pem"));
        TlsTestCertificates.SelfSigned("rsa.example.test", rsa: true).WriteTo(cert, key);
        await using var server = await TestServer.StartAsync(o => o.Tls = new() { CertificatePath = cert, KeyPath = key });
        var port = server.SubmissionsPort;

        foreach (var suite in new[] { "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305" })
        {
            var ok = await SClientAsync(port, "-tls1_2", "-cipher", suite);
            Assert.True(ok.All.Contains($"Ciphersuite: {suite}", StringComparison.Ordinal), $"{suite} should be accepted:\n{ok.All}");
        }
        foreach (var suite in new[]
        {
            "AES128-GCM-SHA256",            // RSA key exchange: no forward secrecy
            "AES256-SHA256",                // RSA key exchange, CBC
            "ECDHE-RSA-AES128-SHA",         // CBC with SHA-1
            "ECDHE-RSA-AES256-SHA384",      // CBC
            "DHE-RSA-AES128-GCM-SHA256",    // finite-field DHE
        })
        {
            await AssertRefusedAsync(server, port, $"TLS 1.2 {suite}", "-tls1_2", "-cipher", suite + ":@SECLEVEL=0");
        }
    }

    [Fact]
    public async Task TlsThirteenOffersOnlyItsAeadSuites()
    {
        await using var server = await TestServer.StartAsync();
        var port = server.SubmissionsPort;
        foreach (var suite in new[] { "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256" })
        {
            var ok = await SClientAsync(port, "-tls1_3", "-ciphersuites", suite);
            Assert.True(ok.All.Contains($"Ciphersuite: {suite}", StringComparison.Ordinal), $"{suite} should be accepted:\n{ok.All}");
        }
        await AssertRefusedAsync(server, port, "TLS 1.3 TLS_AES_128_CCM_SHA256", "-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256");
        // The generated certificate is ECDSA: its TLS 1.2 suites likewise, AEAD only.
        var ecdsa = await SClientAsync(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384");
        Assert.Contains("Ciphersuite: ECDHE-ECDSA-AES256-GCM-SHA384", ecdsa.All, StringComparison.Ordinal);
        await AssertRefusedAsync(server, port, "TLS 1.2 ECDHE-ECDSA-AES128-SHA", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0");
    }

    [Fact]
    public async Task TlsOneOneAndOneZeroAreRefusedOverStartTlsToo()
    {
        await using var server = await TestServer.StartAsync();
        // @SECLEVEL=0 lets the client really offer the old version, so the refusal is the server's.
        await AssertRefusedAsync(server, server.SubmissionsPort, "TLS 1.1", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0");
        await AssertRefusedAsync(server, server.SubmissionsPort, "TLS 1.0", "-tls1", "-cipher", "DEFAULT:@SECLEVEL=0");
        await AssertRefusedAsync(server, server.MxPort, "TLS 1.1 after STARTTLS", "-starttls", "smtp", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0");
        var modern = await SClientAsync(server.MxPort, "-starttls", "smtp");
        Assert.Contains("Protocol version: TLSv1.3", modern.All, StringComparison.Ordinal);
    }

    private static Task<Peers.Result> SClientAsync(int port, params string[] options) =>
        Peers.RunAsync("openssl", ["s_client", "-connect", $"127.0.0.1:{port}", "-brief", .. options], stdin: "QUIT\n");

    /// <summary>The handshake fails with an alert from the server, and the server logs the failed handshake.</summary>
    private static async Task AssertRefusedAsync(TestServer server, int port, string what, params string[] options)
    {
        var failedBefore = server.LogLines.Count(l => l.Contains("event=tls_failed", StringComparison.Ordinal));
        var r = await SClientAsync(port, options);
        Assert.True(r.ExitCode != 0, $"{what} should be refused:\n{r.All}");
        Assert.DoesNotContain("Ciphersuite:", r.All, StringComparison.Ordinal);
        Assert.True(r.All.Contains("alert", StringComparison.Ordinal), $"{what}: expected a TLS alert from the server:\n{r.All}");
        var deadline = Environment.TickCount64 + 5_000;
        while (server.LogLines.Count(l => l.Contains("event=tls_failed", StringComparison.Ordinal)) <= failedBefore)
        {
            Assert.True(Environment.TickCount64 < deadline, $"{what}: no tls_failed logged. Log:\n{server.Logs}");
            await Task.Delay(20);
        }
    }
}
