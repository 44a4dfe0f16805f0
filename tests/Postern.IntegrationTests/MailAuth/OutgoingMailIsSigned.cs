using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.MailAuth.Dkim;
using Postern.Server.Configuration;

namespace Postern.IntegrationTests.MailAuth;

/// <summary>
/// Issue 5: mail a local user submits is DKIM-signed with the key `postern dkim keygen` would have
/// made (DATA/dkim/example.test/sel1.key), and a second Postern, receiving it by MX with mail
/// authentication on, finds the key in DNS (NSD on loopback) and records dkim=pass.
/// </summary>
public sealed class OutgoingMailIsSigned
{
    [Fact]
    public async Task TheReceivingServerVerifiesTheSignature()
    {
        var senderDir = TestServer.NewDataDir();
        var key = DkimKeyStore.Generate(Path.Combine(senderDir, DkimKeyStore.FolderName), "example.test", "sel1", DkimKeyType.Rsa);
        var keyLine = key.TxtRecord.ZoneFileLine.Replace("sel1._domainkey.example.test.", "sel1._domainkey", StringComparison.Ordinal);
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            ["example.test"] = DnsServer.Zone("example.test", keyLine),
            ["peer.test"] = DnsServer.Zone("peer.test", """
                @     IN MX 10 mx.peer.test.
                mx    IN A  127.0.0.72
                """),
        });
        await using var peer = await TestServer.StartAsync(o =>
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
        await using var sender = await TestServer.StartOnAsync(senderDir, o =>
        {
            o.Dns.Servers = [dns.Server];
            o.Delivery.RemotePort = peer.MxPort;
        });
        await using (var c = await RawSmtp.OpenAsync(sender.SubmissionsPort, implicitTls: true))
        {
            Assert.StartsWith("235", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
            await c.CommandAsync("MAIL FROM:<alice@example.test>", 250);
            await c.CommandAsync("RCPT TO:<carol@peer.test>", 250);
            await c.CommandAsync("DATA", 354);
            await c.CommandAsync("From: Alice <alice@example.test>\r\nTo: carol@peer.test\r\nSubject: signed on the way out\r\n\r\nGr\u00fc\u00dfe\r\n.", 250);
        }
        await sender.WaitForLogAsync("event=delivery", "to=carol@peer.test", "status=sent");
        var arrived = Encoding.UTF8.GetString((await peer.WaitForDeliveryAsync("postmaster@peer.test"))[0]);
        Assert.Contains("DKIM-Signature: v=1; a=rsa-sha256", arrived);
        Assert.Contains("dkim=pass header.d=example.test header.s=sel1", arrived);
        Assert.Contains("Subject: signed on the way out", arrived);
    }
}
