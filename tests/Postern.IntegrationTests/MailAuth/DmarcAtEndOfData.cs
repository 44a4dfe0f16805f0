using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.MailAuth.Dkim;

namespace Postern.IntegrationTests.MailAuth;

/// <summary>
/// Issue 5, end to end over SMTP with NSD on loopback: a spoofed From for a p=reject domain is
/// refused at the end of DATA (550 5.7.1); an aligned, DKIM-signed message passes, and its
/// Authentication-Results says so (a forged one with our authserv-id is gone); a p=quarantine
/// failure lands in the Junk folder; with EnforceDmarc off, the policy is only recorded.
/// </summary>
public sealed class DmarcAtEndOfData
{
    private static async Task<(DnsServer Dns, DkimSigner Signer)> ZonesAsync()
    {
        var keys = Path.Combine(TestServer.NewDataDir(), "dkim");
        var key = DkimKeyStore.Generate(keys, "strict.test", "sel1", DkimKeyType.Ed25519);
        var selector = key.TxtRecord.ZoneFileLine.Replace("sel1._domainkey.strict.test.", "sel1._domainkey", StringComparison.Ordinal);
        var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            // SPF never passes from loopback for these: only DKIM can align.
            ["strict.test"] = DnsServer.Zone("strict.test", $"""
                @       IN TXT "v=spf1 ip4:192.0.2.1 -all"
                _dmarc  IN TXT "v=DMARC1; p=reject"
                {selector}
                """),
            ["careful.test"] = DnsServer.Zone("careful.test", """
                @       IN TXT "v=spf1 ip4:192.0.2.1 -all"
                _dmarc  IN TXT "v=DMARC1; p=quarantine"
                """),
            ["sender.test"] = DnsServer.Zone("sender.test", """
                @       IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
                """),
        });
        return (dns, new DkimSigner(DkimKeyStore.Load(keys), TimeProvider.System));
    }

    private static Task<TestServer> ServerAsync(DnsServer dns, bool enforce = true) => TestServer.StartAsync(o =>
    {
        o.MailAuth.Enabled = true;
        o.MailAuth.EnforceDmarc = enforce;
        o.Dns.Servers = [dns.Server];
    });

    private static async Task<string> SendAsync(TestServer server, string mailFrom, string message)
    {
        await using var c = await RawSmtp.OpenAsync(server.MxPort, ehlo: "client.sender.test");
        await c.CommandAsync($"MAIL FROM:<{mailFrom}>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        return await c.CommandAsync(message + ".");
    }

    private static string Message(string from, string subject) =>
        $"From: {from}\r\nTo: alice@example.test\r\nSubject: {subject}\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@test>\r\n" +
        "Authentication-Results: mx.example.test; dmarc=pass (forged)\r\n\r\nhello\r\n";

    [Fact]
    public async Task ASpoofedFromOfAPRejectDomainIsRefused()
    {
        var (dns, _) = await ZonesAsync();
        using var _dns = dns;
        await using var server = await ServerAsync(dns);
        var reply = await SendAsync(server, "bounce@sender.test", Message("ceo@strict.test", "spoofed"));
        Assert.StartsWith("550 5.7.1 Message rejected: it fails the DMARC policy of strict.test", reply);
        await server.WaitForLogAsync("event=rejected", "command=DATA", "code=550", "dmarc=fail");
        Assert.Empty(server.Delivered("alice@example.test"));
    }

    [Fact]
    public async Task AnAlignedSignedMessagePassesAndTheForgedResultsAreGone()
    {
        var (dns, signer) = await ZonesAsync();
        using var _dns = dns;
        await using var server = await ServerAsync(dns);
        var message = Message("ceo@strict.test", "signed");
        var signature = signer.Sign(Encoding.ASCII.GetBytes(message));
        Assert.StartsWith("DKIM-Signature:", signature);
        Assert.StartsWith("250", await SendAsync(server, "bounce@sender.test", signature + message));
        var delivered = Encoding.UTF8.GetString((await server.WaitForDeliveryAsync("alice@example.test"))[0]);
        var ours = delivered[..delivered.IndexOf("Received:", StringComparison.Ordinal)];
        Assert.Contains("Authentication-Results: mx.example.test;", ours);
        Assert.Contains("\tspf=pass", ours);
        Assert.Contains("smtp.mailfrom=bounce@sender.test", ours);
        Assert.Contains("dkim=pass header.d=strict.test", ours);
        Assert.Contains("dmarc=pass", ours);
        Assert.DoesNotContain("(forged)", delivered);
    }

    [Fact]
    public async Task AQuarantinePolicySendsTheMessageToJunk()
    {
        var (dns, _) = await ZonesAsync();
        using var _dns = dns;
        await using var server = await ServerAsync(dns);
        Assert.StartsWith("250", await SendAsync(server, "bounce@sender.test", Message("news@careful.test", "quarantined")));
        var junk = await WaitForAsync(() => server.Delivered("alice@example.test", "Junk"));
        Assert.Contains("dmarc=fail", File.ReadAllText(junk[0]));
        Assert.Empty(server.Delivered("alice@example.test"));
    }

    [Fact]
    public async Task WithEnforcementOffThePolicyIsOnlyRecorded()
    {
        var (dns, _) = await ZonesAsync();
        using var _dns = dns;
        await using var server = await ServerAsync(dns, enforce: false);
        var r = await SendAsync(server, "bounce@sender.test", Message("ceo@strict.test", "recorded"));
        Assert.StartsWith("250", r);
        var delivered = Encoding.UTF8.GetString((await server.WaitForDeliveryAsync("alice@example.test"))[0]);
        Assert.Contains("dmarc=fail", delivered);
    }

    private static async Task<string[]> WaitForAsync(Func<string[]> files)
    {
        var deadline = Environment.TickCount64 + 10_000;
        while (files().Length == 0 && Environment.TickCount64 < deadline)
        {
            await Task.Delay(20);
        }
        return files();
    }
}
