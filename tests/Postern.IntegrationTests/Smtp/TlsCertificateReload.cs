using System.Security.Cryptography;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 4 item 7: the certificate and key are reloaded when their files change, without restart.
/// Certificate swapped on disk: the next handshake uses the new one; a broken pair keeps the old one.
/// </summary>
public sealed class TlsCertificateReload
{
    [Fact]
    public async Task RewrittenFilesAreServedFromTheNextHandshake()
    {
        var dir = TestServer.NewDataDir();
        var (cert, key) = (Path.Combine(dir, "fullchain.pem"), Path.Combine(dir, "privkey.pem"));
        var a = TlsTestCertificates.SelfSigned("a.example.test");
        a.WriteTo(cert, key);
        await using var server = await TestServer.StartAsync(o => o.Tls = new() { CertificatePath = cert, KeyPath = key });
        await server.WaitForLogAsync("event=tls_loaded", $"fingerprint={a.Fingerprint}");
        Assert.Equal(a.Fingerprint, await TlsTestCertificates.ServedOverStartTlsAsync(server.MxPort));

        var b = TlsTestCertificates.SelfSigned("b.example.test");
        b.WriteTo(cert, key);
        var reloaded = await server.WaitForLogAsync("event=tls_reloaded", $"fingerprint={b.Fingerprint}");
        Assert.Contains("subject=\"CN=b.example.test\"", reloaded, StringComparison.Ordinal);
        Assert.Contains(" not_after=", reloaded, StringComparison.Ordinal);

        Assert.Equal(b.Fingerprint, await TlsTestCertificates.ServedOverStartTlsAsync(server.MxPort));
        Assert.Equal(b.Fingerprint, await TlsTestCertificates.ServedOverStartTlsAsync(server.SubmissionPort));
        Assert.Equal(b.Fingerprint, await TlsTestCertificates.ServedOverImplicitTlsAsync(server.SubmissionsPort));
        // The moment between the two writes (certificate B, key A) is not reported as a broken pair.
        Assert.DoesNotContain("event=tls_reload_failed", server.Logs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CertbotSymlinkSwapServesTheNewCertificateAndChain()
    {
        // certbot's layout: live/NAME/fullchain.pem -> ../../archive/NAME/fullchainN.pem; a renewal
        // writes fullchainN+1.pem and privkeyN+1.pem into archive/, then points the links at them.
        var dir = TestServer.NewDataDir();
        var archive = Directory.CreateDirectory(Path.Combine(dir, "archive", "mail.example.test")).FullName;
        var live = Directory.CreateDirectory(Path.Combine(dir, "live", "mail.example.test")).FullName;
        var (cert, key) = (Path.Combine(live, "fullchain.pem"), Path.Combine(live, "privkey.pem"));
        var a = TlsTestCertificates.Chained("a.example.test", "Test Intermediate A");
        a.WriteTo(Path.Combine(archive, "fullchain1.pem"), Path.Combine(archive, "privkey1.pem"));
        File.CreateSymbolicLink(cert, "../../archive/mail.example.test/fullchain1.pem");
        File.CreateSymbolicLink(key, "../../archive/mail.example.test/privkey1.pem");
        await using var server = await TestServer.StartAsync(o => o.Tls = new() { CertificatePath = cert, KeyPath = key });
        Assert.Equal(a.Fingerprint, await TlsTestCertificates.ServedOverStartTlsAsync(server.MxPort));

        var b = TlsTestCertificates.Chained("b.example.test", "Test Intermediate B");
        b.WriteTo(Path.Combine(archive, "fullchain2.pem"), Path.Combine(archive, "privkey2.pem"));
        // Each link replaced atomically: a new link renamed over the old one.
        SwapLink(cert, "../../archive/mail.example.test/fullchain2.pem");
        SwapLink(key, "../../archive/mail.example.test/privkey2.pem");
        await server.WaitForLogAsync("event=tls_reloaded", $"fingerprint={b.Fingerprint}");

        Assert.Equal(b.Fingerprint, await TlsTestCertificates.ServedOverStartTlsAsync(server.MxPort));
        // A real peer shows the chain that comes with it: the leaf, then the new intermediate.
        var shown = await Peers.RunAsync("openssl", ["s_client", "-connect", $"127.0.0.1:{server.SubmissionsPort}", "-showcerts"], stdin: "QUIT\n");
        Assert.Contains("0 s:CN = b.example.test", shown.All, StringComparison.Ordinal);
        Assert.Contains("1 s:CN = Test Intermediate B", shown.All, StringComparison.Ordinal);
        Assert.Contains("i:CN = Test Root", shown.All, StringComparison.Ordinal);
        Assert.DoesNotContain("Test Intermediate A", shown.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LinksReplacedOneAtATimeByUnlinkAndCreateAlsoReload()
    {
        var dir = TestServer.NewDataDir();
        var (cert, key) = (Path.Combine(dir, "cert.pem"), Path.Combine(dir, "key.pem"));
        var a = TlsTestCertificates.SelfSigned("a.example.test");
        a.WriteTo(Path.Combine(dir, "cert-a.pem"), Path.Combine(dir, "key-a.pem"));
        File.CreateSymbolicLink(cert, Path.Combine(dir, "cert-a.pem"));
        File.CreateSymbolicLink(key, Path.Combine(dir, "key-a.pem"));
        await using var server = await TestServer.StartAsync(o => o.Tls = new() { CertificatePath = cert, KeyPath = key });

        var b = TlsTestCertificates.SelfSigned("b.example.test", rsa: true);
        b.WriteTo(Path.Combine(dir, "cert-b.pem"), Path.Combine(dir, "key-b.pem"));
        foreach (var (link, target) in new[] { (cert, "cert-b.pem"), (key, "key-b.pem") })
        {
            File.Delete(link);
            File.CreateSymbolicLink(link, Path.Combine(dir, target));
        }
        await server.WaitForLogAsync("event=tls_reloaded", $"fingerprint={b.Fingerprint}");
        Assert.Equal(b.Fingerprint, await TlsTestCertificates.ServedOverImplicitTlsAsync(server.SubmissionsPort));
    }

    [Fact]
    public async Task ABrokenPairKeepsTheOldCertificateAndIsReportedOnce()
    {
        var dir = TestServer.NewDataDir();
        var (cert, key) = (Path.Combine(dir, "fullchain.pem"), Path.Combine(dir, "privkey.pem"));
        var a = TlsTestCertificates.SelfSigned("a.example.test");
        a.WriteTo(cert, key);
        await using var server = await TestServer.StartAsync(o => o.Tls = new() { CertificatePath = cert, KeyPath = key });

        // The new certificate arrives, its key does not: they do not belong together.
        var b = TlsTestCertificates.SelfSigned("b.example.test");
        File.WriteAllText(cert, b.CertPem);
        var failed = await server.WaitForLogAsync(" error event=tls_reload_failed");
        Assert.Contains($"still serving CN=a.example.test (fingerprint {a.Fingerprint})", failed, StringComparison.Ordinal);
        Assert.Equal(a.Fingerprint, await TlsTestCertificates.ServedOverStartTlsAsync(server.MxPort));
        Assert.Equal(a.Fingerprint, await TlsTestCertificates.ServedOverImplicitTlsAsync(server.SubmissionsPort));
        // Checked every second since, and still reported once.
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        Assert.Single(server.LogLines, l => l.Contains("event=tls_reload_failed", StringComparison.Ordinal));
        Assert.DoesNotContain("event=tls_reloaded", server.Logs, StringComparison.Ordinal);

        // The key follows: now the pair is whole and is served.
        File.WriteAllText(key, b.KeyPem);
        await server.WaitForLogAsync("event=tls_reloaded", $"fingerprint={b.Fingerprint}");
        Assert.Equal(b.Fingerprint, await TlsTestCertificates.ServedOverStartTlsAsync(server.MxPort));

        // A certificate file cut short is refused the same way, and B stays.
        var c = TlsTestCertificates.SelfSigned("c.example.test");
        File.WriteAllText(key, c.KeyPem);
        File.WriteAllText(cert, c.CertPem[..(c.CertPem.Length / 2)]);
        await WaitForCountAsync(server, "event=tls_reload_failed", 2);
        Assert.Equal(b.Fingerprint, await TlsTestCertificates.ServedOverStartTlsAsync(server.MxPort));
    }

    [Fact]
    public async Task AnEstablishedTlsSessionSurvivesTheSwap()
    {
        var dir = TestServer.NewDataDir();
        var (cert, key) = (Path.Combine(dir, "fullchain.pem"), Path.Combine(dir, "privkey.pem"));
        var a = TlsTestCertificates.SelfSigned("a.example.test");
        a.WriteTo(cert, key);
        await using var server = await TestServer.StartAsync(o => o.Tls = new() { CertificatePath = cert, KeyPath = key });

        await using var session = await RawSmtp.OpenAsync(server.MxPort);
        await session.StartTlsAsync();
        await session.CommandAsync("EHLO client.example", 250);
        await session.CommandAsync("MAIL FROM:<sender@remote.example>", 250);

        var b = TlsTestCertificates.SelfSigned("b.example.test");
        b.WriteTo(cert, key);
        await server.WaitForLogAsync("event=tls_reloaded", $"fingerprint={b.Fingerprint}");
        Assert.Equal(b.Fingerprint, await TlsTestCertificates.ServedOverStartTlsAsync(server.MxPort));

        // The session that began under A goes on under A, to the end of its transaction.
        await session.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await session.CommandAsync("DATA", 354);
        await session.SendAsync("Subject: across a certificate swap\r\n\r\nstill here\r\n.\r\n");
        await session.ExpectAsync(250);
        await session.CommandAsync("QUIT", 221);
        Assert.Equal(a.Fingerprint, session.Tls!.RemoteCertificate!.GetCertHashString(HashAlgorithmName.SHA256));
        var delivered = await server.WaitForDeliveryAsync("alice@example.test");
        Assert.Contains("still here", System.Text.Encoding.ASCII.GetString(delivered[0]), StringComparison.Ordinal);
    }

    private static void SwapLink(string link, string target)
    {
        var temporary = link + ".new";
        File.CreateSymbolicLink(temporary, target);
        File.Move(temporary, link, overwrite: true); // rename(2): the link is replaced, never missing
    }

    private static async Task WaitForCountAsync(TestServer server, string fragment, int count)
    {
        var deadline = Environment.TickCount64 + 10_000;
        while (server.LogLines.Count(l => l.Contains(fragment, StringComparison.Ordinal)) < count)
        {
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException($"fewer than {count} lines with {fragment}. Log:\n{server.Logs}");
            }
            await Task.Delay(20);
        }
    }
}
