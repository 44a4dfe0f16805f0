using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.MailAuth.Dkim;
using Postern.Server.Configuration;

namespace Postern.IntegrationTests.MailAuth;

/// <summary>
/// Issue 5: mail a local user submits is DKIM-signed with the key `postern dkim keygen` would have
/// made (DATA/dkim/example.test/sel1.key), and a second Postern, receiving it by MX with mail
/// authentication on, finds the key in DNS (NSD on loopback) and records dkim=pass. A key put in
/// place while the server runs signs the next message, without a restart.
/// </summary>
public sealed class OutgoingMailIsSigned
{
    [Fact]
    public async Task TheReceivingServerVerifiesTheSignature()
    {
        var senderDir = TestServer.NewDataDir();
        var key = DkimKeyStore.Generate(Path.Combine(senderDir, DkimKeyStore.FolderName), "example.test", "sel1", DkimKeyType.Rsa);
        await using var pair = await Pair.StartAsync(senderDir, key);
        var arrived = await pair.SendAsync("signed on the way out");
        Assert.Contains("DKIM-Signature: v=1; a=rsa-sha256", arrived);
        Assert.Contains("dkim=pass header.d=example.test header.s=sel1", arrived);
        Assert.Contains("Subject: signed on the way out", arrived);
    }

    [Fact]
    public async Task AKeyAddedWhileRunningSignsTheNextMessage()
    {
        // The key is made elsewhere (so that DNS can publish it from the start) and moved in later.
        var key = DkimKeyStore.Generate(Path.Combine(TestServer.NewDataDir(), DkimKeyStore.FolderName), "example.test", "sel1", DkimKeyType.Ed25519);
        var senderDir = TestServer.NewDataDir();
        await using var pair = await Pair.StartAsync(senderDir, key);
        var before = await pair.SendAsync("no key yet");
        Assert.DoesNotContain("DKIM-Signature:", before);
        Assert.Contains("dkim=none", before);

        var folder = Path.Combine(senderDir, DkimKeyStore.FolderName);
        Directory.CreateDirectory(folder);
        File.Move(key.Path!, Path.Combine(folder, Path.GetFileName(key.Path!)));
        await Task.Delay(Postern.Server.Accounts.ReloadingFile<DkimKeyStore>.CheckInterval * 2);
        var after = await pair.SendAsync("key in place");
        Assert.Contains("DKIM-Signature: v=1; a=ed25519-sha256", after);
        Assert.Contains("dkim=pass header.d=example.test header.s=sel1", after);
        await pair.Sender.WaitForLogAsync("event=reloaded", "entries=1");
    }

    [Fact]
    public async Task AnUnusableKeyStopsTheStartNamingItsFile()
    {
        var dir = TestServer.NewDataDir();
        var folder = Path.Combine(dir, DkimKeyStore.FolderName);
        Directory.CreateDirectory(folder);
        var wrong = Path.Combine(folder, "Example.TEST.sel1.key"); // upper case: not a name the store takes
        File.WriteAllText(wrong, "not even a key");
        var e = await Assert.ThrowsAsync<DkimKeyStoreException>(() => TestServer.StartOnAsync(dir));
        Assert.Contains(wrong, e.Message);
        Assert.Contains("DOMAIN.SELECTOR.key", e.Message);
    }

    /// <summary>A sending Postern (example.test, alice) and a receiving one (peer.test by MX) checking mail authentication.</summary>
    private sealed class Pair(DnsServer dns, TestServer peer, TestServer sender) : IAsyncDisposable
    {
        private int _sent;

        public TestServer Sender => sender;

        public static async Task<Pair> StartAsync(string senderDir, DkimSigningKey key)
        {
            var keyLine = key.TxtRecord.ZoneFileLine.Replace("sel1._domainkey.example.test.", "sel1._domainkey", StringComparison.Ordinal);
            var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
            {
                ["example.test"] = DnsServer.Zone("example.test", keyLine),
                ["peer.test"] = DnsServer.Zone("peer.test", """
                    @     IN MX 10 mx.peer.test.
                    mx    IN A  127.0.0.72
                    """),
            });
            var peer = await TestServer.StartAsync(o =>
            {
                o.Domains = ["peer.test"];
                o.Aliases.Clear();
                o.Aliases["carol@peer.test"] = ["postmaster@peer.test"];
                o.MailAuth.Enabled = true;
                o.Dns.Servers = [dns.Server];
                o.Listeners =
                [
                    new ListenerOptions { Name = "mx", Endpoint = "127.0.0.72:0", Role = ListenerRole.Mx },
                    new ListenerOptions { Name = "submission", Endpoint = "127.0.0.72:0", Role = ListenerRole.Submission },
                    new ListenerOptions { Name = "submissions", Endpoint = "127.0.0.72:0", Role = ListenerRole.Submissions },
                ];
            });
            var sender = await TestServer.StartOnAsync(senderDir, o =>
            {
                o.Dns.Servers = [dns.Server];
                o.Delivery.RemotePort = peer.MxPort;
            });
            return new Pair(dns, peer, sender);
        }

        /// <summary>Alice submits a message to carol@peer.test; returns it as it arrived at the peer.</summary>
        public async Task<string> SendAsync(string subject)
        {
            await using (var c = await RawSmtp.OpenAsync(sender.SubmissionsPort, implicitTls: true))
            {
                Assert.StartsWith("235", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
                await c.CommandAsync("MAIL FROM:<alice@example.test>", 250);
                await c.CommandAsync("RCPT TO:<carol@peer.test>", 250);
                await c.CommandAsync("DATA", 354);
                await c.CommandAsync($"From: Alice <alice@example.test>\r\nTo: carol@peer.test\r\nSubject: {subject}\r\n\r\nGr\u00fc\u00dfe\r\n.", 250);
            }
            var arrived = await peer.WaitForDeliveryAsync("postmaster@peer.test", ++_sent);
            return Assert.Single(arrived.Select(Encoding.UTF8.GetString), m => m.Contains($"Subject: {subject}\r\n", StringComparison.Ordinal));
        }

        public async ValueTask DisposeAsync()
        {
            await sender.DisposeAsync();
            await peer.DisposeAsync();
            dns.Dispose();
        }
    }
}
