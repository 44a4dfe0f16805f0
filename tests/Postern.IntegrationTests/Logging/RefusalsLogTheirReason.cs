using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;

namespace Postern.IntegrationTests.Logging;

/// <summary>
/// Issue 11 item 8, end to end: each kind of refusal, provoked by a real client against a real
/// server (and a real DNS server, NSD, on loopback), logs its reason word; a DMARC quarantine has
/// its own line; a DNS server that fails is named; and with Logging.Format json every line is a
/// JSON object a shipper can parse, the queue id still greppable.
/// </summary>
public sealed class RefusalsLogTheirReason
{
    private static readonly Dictionary<string, string?> Zones = new()
    {
        ["bl.test"] = DnsServer.Zone("bl.test", """
            2.0.0.127 IN A 127.0.0.2
            """),
        ["bad.test"] = DnsServer.Zone("bad.test", """
            @   IN TXT "v=spf1 ip4:192.0.2.1 -all"
            """),
        ["sender.test"] = DnsServer.Zone("sender.test", """
            @   IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
            """),
        ["strict.test"] = DnsServer.Zone("strict.test", """
            @       IN TXT "v=spf1 ip4:192.0.2.1 -all"
            _dmarc  IN TXT "v=DMARC1; p=reject"
            """),
        ["careful.test"] = DnsServer.Zone("careful.test", """
            @       IN TXT "v=spf1 ip4:192.0.2.1 -all"
            _dmarc  IN TXT "v=DMARC1; p=quarantine"
            """),
        // Configured without data: NSD answers SERVFAIL, as a broken zone would.
        ["broken.test"] = null,
    };

    // argv: port sender rcpt... ; prints each refused recipient's code, or "sent QUEUE-REPLY".
    private const string Smtplib = """
        import smtplib, sys
        port, sender, rcpts = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
        s = smtplib.SMTP('127.0.0.1', port, local_hostname='client.example', timeout=30)
        s.ehlo()
        msg = 'From: %s\r\nTo: %s\r\nSubject: log test\r\n\r\nhello\r\n' % (sender, rcpts[0])
        try:
            refused = s.sendmail(sender, rcpts, msg)
            for r, (code, text) in refused.items():
                print('refused', r, code)
            print('sent', s.noop()[0])
        except smtplib.SMTPRecipientsRefused as e:
            for r, (code, text) in e.recipients.items():
                print('refused', r, code)
        s.quit()
        """;

    private static Task<Peers.Result> SmtplibAsync(int port, string sender, params string[] rcpts) =>
        Peers.RunAsync("python3", ["-c", Smtplib, port.ToString(System.Globalization.CultureInfo.InvariantCulture), sender, .. rcpts]);

    private static async Task<string> SendAsync(TestServer server, string mailFrom, string from, int expect)
    {
        await using var c = await RawSmtp.OpenAsync(server.MxPort, ehlo: "client.sender.test");
        var mail = await c.CommandAsync($"MAIL FROM:<{mailFrom}>");
        if (!mail.StartsWith("250", StringComparison.Ordinal))
        {
            return mail;
        }
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        return await c.CommandAsync($"From: {from}\r\nTo: alice@example.test\r\nSubject: dmarc\r\nMessage-ID: <{Guid.NewGuid():N}@test>\r\n\r\nhello\r\n.", expect);
    }

    private static void MailAuthOn(PosternOptions o, DnsServer dns)
    {
        o.MailAuth.Enabled = true;
        o.Dns.Servers = [dns.Server];
    }

    [Fact]
    public async Task RelayDeniedAndUnknownUserAreTheirOwnWords()
    {
        await using var server = await TestServer.StartAsync();
        var run = await SmtplibAsync(server.MxPort, "someone@client.example", "friend@far.example", "nobody@example.test");
        Assert.True(run.ExitCode == 0, run.All);
        Assert.Contains("refused friend@far.example 554", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("refused nobody@example.test 550", run.Stdout, StringComparison.Ordinal);
        await server.WaitForLogAsync("event=rejected", "command=RCPT", "code=554", "reason=relay_denied ", "detail=\"to=<friend@far.example>\"");
        await server.WaitForLogAsync("event=rejected", "command=RCPT", "code=550", "reason=unknown_user ", "detail=\"to=<nobody@example.test>\"");
    }

    [Fact]
    public async Task ADnsblHitSaysDnsblAndNamesTheList()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Dns.Servers = [dns.Server];
            o.Dnsbl = new DnsblOptions { Lists = [new() { Zone = "bl.test" }] };
        });
        await using var c = await RawSmtp.ConnectAsync(server.MxPort, from: IPAddress.Parse("127.0.0.2"));
        Assert.StartsWith("554 5.7.1", await c.ReadReplyAsync());
        await server.WaitForLogAsync("event=rejected", "ip=127.0.0.2", "command=CONNECT", "reason=dnsbl ", "detail=\"listed at bl.test (127.0.0.2, weight 1)");
    }

    [Fact]
    public async Task AnSpfFailRefusedSaysSpf()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o =>
        {
            MailAuthOn(o, dns);
            o.MailAuth.RejectSpfFail = true;
        });
        Assert.StartsWith("550 5.7.23", await SendAsync(server, "someone@bad.test", "someone@bad.test", 550));
        await server.WaitForLogAsync("event=rejected", "command=MAIL", "code=550", "enhanced=5.7.23", "reason=spf ", "detail=\"spf=fail ");
    }

    [Fact]
    public async Task ADmarcRejectSaysDmarcAndAQuarantineHasItsOwnLine()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o => MailAuthOn(o, dns));
        Assert.StartsWith("550 5.7.1", await SendAsync(server, "bounce@sender.test", "ceo@strict.test", 550));
        await server.WaitForLogAsync("event=rejected", "command=DATA", "code=550", "reason=dmarc ", "dmarc=fail");

        var queued = await SendAsync(server, "bounce@sender.test", "news@careful.test", 250);
        var id = queued.Split(' ')[^1].Trim();
        var line = await server.WaitForLogAsync("event=quarantined", $"queue_id={id} ", "reason=dmarc ", "folder=Junk ", "dmarc=fail");
        Assert.Contains("header.from=careful.test", line, StringComparison.Ordinal);
        // The accepted line comes first: the quarantine is of a message that was taken.
        var lines = server.LogLines.ToList();
        Assert.True(lines.FindIndex(l => l.Contains("event=accepted", StringComparison.Ordinal) && l.Contains(id, StringComparison.Ordinal)) < lines.IndexOf(line));
        // A message that passes is not quarantined.
        Assert.Single(server.LogLines, l => l.Contains("event=quarantined", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ARateLimitSaysRate()
    {
        await using var server = await TestServer.StartAsync(o => o.Limits.MaxMessagesPerHourPerIp = 1);
        var first = await SmtplibAsync(server.MxPort, "someone@client.example", "alice@example.test");
        Assert.True(first.ExitCode == 0 && first.Stdout.Contains("sent", StringComparison.Ordinal), first.All);
        var second = await SmtplibAsync(server.MxPort, "someone@client.example", "alice@example.test");
        Assert.NotEqual(0, second.ExitCode); // smtplib raises SMTPSenderRefused on the 450
        Assert.Contains("450", second.All, StringComparison.Ordinal);
        await server.WaitForLogAsync("event=rejected", "command=MAIL", "code=450", "reason=rate ", "detail=\"messages per hour from 127.0.0.1\"");
    }

    [Fact]
    public async Task ADnsServerThatAnswersServfailIsNamed()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o =>
        {
            MailAuthOn(o, dns);
            o.Dnsbl = new DnsblOptions { Lists = [new() { Zone = "broken.test" }] };
        });
        // The blocklist and SPF both ask about broken.test.
        Assert.StartsWith("250", await SendAsync(server, "someone@broken.test", "someone@broken.test", 250));
        await server.WaitForLogAsync("event=dnsbl_failed", "zone=broken.test", $"reason=\"{dns.Server} answered ServerFailure\"");
        await server.WaitForLogAsync("event=dns_failed", $"server={dns.Server} ", "query=broken.test ", "type=TXT ", "reason=\"answered ServerFailure\"");
    }

    [Fact]
    public async Task ADnsServerThatIsNotThereIsNamedAndTheDeliveryDefersSayingSo()
    {
        var dead = $"127.0.0.1:{Ports.Free(IPAddress.Loopback, ProtocolType.Udp)}";
        await using var server = await TestServer.StartAsync(o => o.Dns = new DnsOptions { Servers = [dead], Timeout = TimeSpan.FromMilliseconds(300) });
        // fwd@example.test is an alias of someone@remote.example: its MX must be looked up.
        var run = await SmtplibAsync(server.MxPort, "someone@client.example", "fwd@example.test");
        Assert.True(run.ExitCode == 0, run.All);
        var line = await server.WaitForLogAsync("event=dns_failed", $"server={dead} ", "query=remote.example ", "type=MX ");
        Assert.Contains(dead, line[line.IndexOf(" reason=", StringComparison.Ordinal)..], StringComparison.Ordinal); // DnsClient's words name it too
        await server.WaitForLogAsync("event=delivery", "to=someone@remote.example", "status=deferred", dead);
    }

    [Fact]
    public async Task JsonLinesParseAndKeepTheQueueIdGreppable()
    {
        await using var server = await TestServer.StartAsync(o => o.Logging.Format = LogFormat.Json);
        var run = await SmtplibAsync(server.MxPort, "someone@client.example", "alice@example.test", "friend@far.example");
        Assert.True(run.ExitCode == 0, run.All);
        await server.WaitForDeliveryAsync("alice@example.test");
        var delivered = await server.WaitForLogAsync("\"event\":\"delivery\"", "\"status\":\"sent\"");
        await server.WaitForLogAsync("\"event\":\"removed\"");
        var objects = server.LogLines.Select(l =>
        {
            Assert.EndsWith("}\n", l);
            Assert.Equal(1, l.Count(c => c == '\n'));
            using var doc = JsonDocument.Parse(l);
            return doc.RootElement.Clone();
        }).ToList();
        Assert.All(objects, o =>
        {
            Assert.True(DateTimeOffset.TryParse(o.GetProperty("time").GetString(), System.Globalization.CultureInfo.InvariantCulture, out _));
            Assert.Contains(o.GetProperty("level").GetString(), new[] { "trace", "debug", "info", "warn", "error", "crit" });
            Assert.False(string.IsNullOrEmpty(o.GetProperty("event").GetString()));
        });
        var rejected = Assert.Single(objects, o => o.GetProperty("event").GetString() == "rejected");
        Assert.Equal("relay_denied", rejected.GetProperty("reason").GetString());
        Assert.Equal(554, rejected.GetProperty("code").GetInt32());
        var accepted = Assert.Single(objects, o => o.GetProperty("event").GetString() == "accepted");
        var id = accepted.GetProperty("queue_id").GetString()!;
        Assert.Equal(1, accepted.GetProperty("rcpts").GetInt32());
        // grep QUEUEID: the message's whole life, in JSON as in key=value.
        var grep = server.LogLines.Where(l => l.Contains(id, StringComparison.Ordinal)).ToList();
        Assert.Contains(grep, l => l.Contains("\"event\":\"accepted\"", StringComparison.Ordinal));
        Assert.Contains(delivered, grep);
        Assert.Contains(grep, l => l.Contains("\"event\":\"removed\"", StringComparison.Ordinal));
    }
}
