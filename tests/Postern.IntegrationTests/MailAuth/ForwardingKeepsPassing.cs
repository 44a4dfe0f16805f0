using System.Globalization;
using System.Net;
using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.MailAuth.Dkim;
using Postern.Server.Configuration;

namespace Postern.IntegrationTests.MailAuth;

/// <summary>
/// Issue 5, item 4: a message forwarded by an alias keeps passing at the next hop. Three Posterns on
/// their own loopback addresses, each connecting out from its own (Delivery.BindAddresses) to the
/// others' port, with zones in NSD: alice at example.test (127.0.0.81, DKIM-signs, SPF names only
/// .81, DMARC p=reject) writes to bob@fwd.test, an alias of the forwarder (127.0.0.82) for
/// carol@final.test (127.0.0.83). At the final server SPF passes for the SRS sender in fwd.test
/// (it would fail for example.test from .82), DKIM and DMARC still pass, and the forwarder's ARC
/// set verifies, in Postern and in Debian's dkimpy (arc_verify). A bounce to the SRS address finds
/// its way back to alice; a forged one is refused.
/// </summary>
public sealed class ForwardingKeepsPassing
{
    private const string Python = "/usr/bin/python3"; // Debian's, where python3-dkim is installed

    private static readonly IPAddress Origin = IPAddress.Parse("127.0.0.81");
    private static readonly IPAddress Fwd = IPAddress.Parse("127.0.0.82");
    private static readonly IPAddress Final = IPAddress.Parse("127.0.0.83");

    // arc_verify from dkimpy, its keys from the given DNS server (ip port) through dnspython.
    private const string ArcVerify = """
        import sys, dkim, dns.resolver
        ip, port = sys.argv[1], int(sys.argv[2])
        r = dns.resolver.Resolver(configure=False); r.nameservers = [ip]; r.port = port
        def txt(name, timeout=5):
            name = name.decode() if isinstance(name, bytes) else name
            return b"".join(b"".join(a.strings) for a in r.resolve(name.rstrip("."), "TXT"))
        cv, results, comment = dkim.arc_verify(sys.stdin.buffer.read(), dnsfunc=txt)
        print(cv.decode(), comment)
        """;

    [Fact]
    public async Task SpfDkimDmarcAndArcPassAfterTheForwardAndBouncesComeBack()
    {
        var port = Ports.FreeOnAll(Origin, Fwd, Final);
        var originDir = TestServer.NewDataDir();
        var fwdDir = TestServer.NewDataDir();
        var dkim = DkimKeyStore.Generate(Path.Combine(originDir, DkimKeyStore.FolderName), "example.test", "sel1", DkimKeyType.Rsa);
        var arc = DkimKeyStore.Generate(Path.Combine(fwdDir, DkimKeyStore.FolderName), "fwd.test", "arc1", DkimKeyType.Rsa);
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            ["example.test"] = DnsServer.Zone("example.test", $"""
                @       IN MX  10 mx.example.test.
                mx      IN A   {Origin}
                @       IN TXT "v=spf1 ip4:{Origin} -all"
                _dmarc  IN TXT "v=DMARC1; p=reject"
                {Relative(dkim)}
                """),
            ["fwd.test"] = DnsServer.Zone("fwd.test", $"""
                @       IN MX  10 mx.fwd.test.
                mx      IN A   {Fwd}
                @       IN TXT "v=spf1 ip4:{Fwd} -all"
                {Relative(arc)}
                """),
            ["final.test"] = DnsServer.Zone("final.test", $"""
                @       IN MX  10 mx.final.test.
                mx      IN A   {Final}
                """),
        });
        void Common(PosternOptions o, IPAddress ip, string domain)
        {
            o.Hostname = $"mx.{domain}";
            o.MailAuth.Enabled = true;
            o.Dns.Servers = [dns.Server];
            o.Delivery.RemotePort = port;
            o.Delivery.BindAddresses = [ip.ToString()];
            // Everyone here is on 127.0.0.0/8: none may count as trusted, or nothing would be checked.
            o.Relay.TrustedNetworks = [];
            o.Listeners =
            [
                new ListenerOptions { Name = "mx", Endpoint = $"{ip}:{port}", Role = ListenerRole.Mx },
                new ListenerOptions { Name = "submission", Endpoint = $"{ip}:0", Role = ListenerRole.Submission },
                new ListenerOptions { Name = "submissions", Endpoint = $"{ip}:0", Role = ListenerRole.Submissions },
            ];
        }
        await using var final = await TestServer.StartAsync(o =>
        {
            Common(o, Final, "final.test");
            o.Domains = ["final.test"];
            o.Aliases.Clear();
            o.Aliases["carol@final.test"] = ["postmaster@final.test"];
        });
        await using var fwd = await TestServer.StartOnAsync(fwdDir, o =>
        {
            Common(o, Fwd, "fwd.test");
            o.Domains = ["fwd.test"];
            o.Aliases.Clear();
            o.Aliases["bob@fwd.test"] = ["carol@final.test"];
        });
        await using var origin = await TestServer.StartOnAsync(originDir, o =>
        {
            Common(o, Origin, "example.test");
            o.Aliases.Clear();
        });

        await using (var c = await RawSmtp.OpenAsync(origin.SubmissionsPort, implicitTls: true, host: Origin.ToString()))
        {
            Assert.StartsWith("235", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
            await c.CommandAsync("MAIL FROM:<alice@example.test>", 250);
            await c.CommandAsync("RCPT TO:<bob@fwd.test>", 250);
            await c.CommandAsync("DATA", 354);
            await c.CommandAsync("From: Alice <alice@example.test>\r\nTo: bob@fwd.test\r\nSubject: through a forwarder\r\n" +
                "Message-ID: <fwd-1@example.test>\r\n\r\nHello Bob,\r\nthis goes on to Carol.\r\n.", 250);
        }
        var arrived = Encoding.UTF8.GetString((await final.WaitForDeliveryAsync("postmaster@final.test", timeoutMs: 20_000))[0]);
        var flat = arrived.Replace("\r\n\t", " ", StringComparison.Ordinal);

        // The final server: the SRS sender in fwd.test from .82 passes SPF; the rest still pass.
        var returnPath = arrived[(arrived.IndexOf("Return-Path: <", StringComparison.Ordinal) + 14)..];
        returnPath = returnPath[..returnPath.IndexOf('>')];
        Assert.Matches("^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=example.test=alice@fwd.test$", returnPath);
        Assert.Contains($"spf=pass reason=\"'ip4:{Fwd}' matched in the SPF record of fwd.test\" smtp.mailfrom=\"{returnPath}\"", flat);
        Assert.Contains("dkim=pass header.d=example.test header.s=sel1", flat);
        Assert.Contains("dmarc=pass", flat);
        Assert.Contains("arc=pass reason=\"i=1 fwd.test\" smtp.remote-ip=127.0.0.82", flat);
        Assert.Contains("ARC-Seal: i=1; a=rsa-sha256; cv=none; d=fwd.test; s=arc1;", flat);
        // The forwarder's arrival results travel in ARC-Authentication-Results.
        Assert.Contains("ARC-Authentication-Results: i=1; mx.fwd.test;", flat);
        Assert.Contains($"spf=pass reason=\"'ip4:{Origin}' matched in the SPF record of example.test\" smtp.mailfrom=alice@example.test", flat);

        // An independent verifier agrees about the chain.
        var verdict = await Peers.RunAsync(Python, ["-c", ArcVerify, dns.EndPoint.Address.ToString(), dns.EndPoint.Port.ToString(CultureInfo.InvariantCulture)], arrived);
        Assert.True(verdict.Stdout.StartsWith("pass", StringComparison.Ordinal), verdict.All);

        // A bounce to the SRS address reaches the forwarder, which sends it back to alice.
        await using (var c = await RawSmtp.OpenAsync(port, host: Fwd.ToString(), from: Final))
        {
            await c.CommandAsync("MAIL FROM:<>", 250);
            await c.CommandAsync($"RCPT TO:<{returnPath}>", 250);
            var forged = returnPath.Replace("=example.test=", "=example.org=", StringComparison.Ordinal);
            Assert.StartsWith("550 5.1.1", await c.CommandAsync($"RCPT TO:<{forged}>"));
            await c.CommandAsync("DATA", 354);
            await c.CommandAsync("From: MAILER-DAEMON@mx.final.test\r\nTo: " + returnPath + "\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\nIt bounced.\r\n.", 250);
        }
        var bounced = Encoding.UTF8.GetString((await origin.WaitForDeliveryAsync("alice@example.test", timeoutMs: 20_000))[0]);
        Assert.Contains("Subject: Undelivered Mail Returned to Sender", bounced);
        Assert.StartsWith("Return-Path: <>", bounced);
    }

    // The key record as a line of its own zone (name relative to the origin).
    private static string Relative(DkimSigningKey key) =>
        key.TxtRecord.ZoneFileLine.Replace($"._domainkey.{key.Domain}.", "._domainkey", StringComparison.Ordinal);
}
