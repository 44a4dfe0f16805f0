using System.Text;
using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;

namespace Postern.IntegrationTests.Delivery;

/// <summary>
/// End to end: a message relayed through one Postern is delivered by MX to another (listening on
/// 127.0.0.12, while the first MX on 127.0.0.11 is down), with NSD serving the zone.
/// </summary>
public sealed class RelayedMailGoesOut
{
    private static readonly string Zone = DnsServer.Zone("peer.test", """
        @        IN MX 10 dead.peer.test.
        @        IN MX 20 live.peer.test.
        dead     IN A   127.0.0.11
        live     IN A   127.0.0.12
        nullmx   IN MX 0 .
        """);

    private static Task<TestServer> PeerAsync() => TestServer.StartAsync(o =>
    {
        o.Domains = ["example.test", "peer.test"];
        o.Aliases["carol@peer.test"] = ["alice@example.test"];
        o.Listeners =
        [
            new ListenerOptions { Name = "mx", Endpoint = "127.0.0.12:0", Role = ListenerRole.Mx },
            new ListenerOptions { Name = "submission", Endpoint = "127.0.0.12:0", Role = ListenerRole.Submission },
            new ListenerOptions { Name = "submissions", Endpoint = "127.0.0.12:0", Role = ListenerRole.Submissions },
        ];
    });

    private static async Task<string> RelayAsync(TestServer sender, string to)
    {
        await using var c = await RawSmtp.OpenAsync(sender.MxPort);
        await c.CommandAsync("MAIL FROM:<app@origin.test>", 250);
        await c.CommandAsync($"RCPT TO:<{to}>", 250);
        await c.CommandAsync("DATA", 354);
        var reply = await c.CommandAsync("From: app@origin.test\r\nSubject: out and about\r\nMessage-ID: <r1@origin.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nrelayed\r\n.", 250);
        return reply.Split(' ')[^1];
    }

    [Fact]
    public async Task DeliveredToThePeerAndRemovedFromTheQueue()
    {
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?> { ["peer.test"] = Zone });
        await using var peer = await PeerAsync();
        await using var sender = await TestServer.StartAsync(o =>
        {
            o.Relay.TrustedNetworks = ["127.0.0.0/8"];
            o.Dns.Servers = [dns.Server];
            o.Delivery.RemotePort = peer.MxPort;
        });
        var id = await RelayAsync(sender, "carol@peer.test");
        var arrived = Encoding.UTF8.GetString((await peer.WaitForDeliveryAsync("alice@example.test"))[0]);
        Assert.Contains("Subject: out and about", arrived);
        Assert.Contains("with ESMTPS id", arrived); // opportunistic STARTTLS between the two
        await sender.WaitForLogAsync("event=delivery", $"queue_id={id}", "to=carol@peer.test", "transport=smtp", "status=sent");
        await sender.WaitForLogAsync("event=removed", $"queue_id={id}");
        Assert.False(File.Exists(Path.Combine(sender.DataDir, "queue", "messages", id)));
    }

    [Fact]
    public async Task UnreachableDestinationDefersWithBackoffThenExpires()
    {
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?> { ["peer.test"] = Zone });
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var sender = await TestServer.StartAsync(o =>
        {
            o.Relay.TrustedNetworks = ["127.0.0.0/8"];
            o.Dns.Servers = [dns.Server];
            o.Delivery.RemotePort = 9; // nothing listens on either MX
            o.Delivery.RetryInitialDelay = TimeSpan.FromMinutes(5);
            o.Delivery.DelayWarningAfter = TimeSpan.FromMinutes(4);
            o.Delivery.MaxQueueLifetime = TimeSpan.FromHours(1);
        }, time: time);
        var id = await RelayAsync(sender, "carol@peer.test");
        await sender.WaitForLogAsync("event=delivery", $"queue_id={id}", "status=deferred", "dead.peer.test[127.0.0.11]", "live.peer.test[127.0.0.12]");
        var statePath = Path.Combine(sender.DataDir, "queue", "state", id);
        // (the state file is written just after the delivery line is logged)
        await WaitForAsync(() => File.Exists(statePath) && File.ReadAllText(statePath).Contains("\"Attempts\":1", StringComparison.Ordinal));
        // The next attempt waits five minutes (on the injected clock), then ten...
        time.Advance(TimeSpan.FromMinutes(5));
        await WaitForAsync(() => File.ReadAllText(Path.Combine(sender.DataDir, "queue", "state", id)).Contains("\"Attempts\":2", StringComparison.Ordinal));
        // Past Delivery.DelayWarningAfter the sender is warned, once.
        await sender.WaitForLogAsync("event=bounce_queued", $"queue_id={id}", "to=app@origin.test");
        await WaitForAsync(() => File.ReadAllText(statePath).Contains("\"Warned\":true", StringComparison.Ordinal));
        // ...and past the queue lifetime the recipient bounces with the last error.
        time.Advance(TimeSpan.FromHours(2));
        await sender.WaitForLogAsync("event=delivery", $"queue_id={id}", "status=bounced", "4.4.7");
        // The sender is told (a DSN is queued to <app@origin.test>) and only then is the message removed.
        await sender.WaitForLogAsync("event=removed", $"queue_id={id}");
        Assert.Equal(2, sender.LogLines.Count(l => l.Contains("event=bounce_queued", StringComparison.Ordinal) && l.Contains($"queue_id={id}", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task NullMxBouncesAtOnceWithADeliveryStatusNotification()
    {
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?> { ["peer.test"] = Zone });
        await using var server = await TestServer.StartAsync(o => o.Dns.Servers = [dns.Server]);
        string id;
        await using (var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true))
        {
            Assert.StartsWith("235", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
            await c.CommandAsync("MAIL FROM:<alice@example.test> RET=FULL ENVID=env-42", 250);
            await c.CommandAsync("RCPT TO:<nobody@nullmx.peer.test> NOTIFY=FAILURE ORCPT=rfc822;nobody@nullmx.peer.test", 250);
            await c.CommandAsync("DATA", 354);
            id = (await c.CommandAsync("From: alice@example.test\r\nSubject: into the void\r\n\r\nhello\r\n.", 250)).Split(' ')[^1];
        }
        await server.WaitForLogAsync("event=delivery", $"queue_id={id}", "status=bounced", "556 5.1.10");
        var dsn = MimeKit.MimeMessage.Load(new MemoryStream((await server.WaitForDeliveryAsync("alice@example.test"))[0]));
        Assert.Equal("Undelivered Mail Returned to Sender", dsn.Subject);
        var report = Assert.IsType<MimeKit.MultipartReport>(dsn.Body);
        Assert.Equal("delivery-status", report.ReportType);
        var status = Assert.Single(report.OfType<MimeKit.MessageDeliveryStatus>());
        Assert.Equal("env-42", status.StatusGroups[0]["Original-Envelope-Id"]);
        var recipient = status.StatusGroups[1];
        Assert.Equal("rfc822; nobody@nullmx.peer.test", recipient["Final-Recipient"]);
        Assert.Equal("failed", recipient["Action"]);
        Assert.Equal("5.1.10", recipient["Status"]);
        Assert.StartsWith("smtp; 556 5.1.10", recipient["Diagnostic-Code"]);
        var returned = Assert.Single(report.OfType<MimeKit.MessagePart>());
        Assert.Equal("into the void", returned.Message!.Subject);
        // The report itself comes from the null sender, so it can never bounce back in a loop.
        Assert.StartsWith("Return-Path: <>", Encoding.UTF8.GetString(File.ReadAllBytes(server.Delivered("alice@example.test")[0])));
        await server.WaitForLogAsync("event=removed", $"queue_id={id}");
    }

    [Fact]
    public async Task NotifySuccessGetsADeliveredReport()
    {
        await using var server = await TestServer.StartAsync();
        await using (var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true))
        {
            Assert.StartsWith("235", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
            await c.CommandAsync("MAIL FROM:<alice@example.test>", 250);
            await c.CommandAsync("RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE", 250);
            await c.CommandAsync("RCPT TO:<postmaster@example.test>", 250);
            await c.CommandAsync("DATA", 354);
            await c.CommandAsync("From: alice@example.test\r\nSubject: did it arrive\r\n\r\nhello\r\n.", 250);
        }
        await server.WaitForDeliveryAsync("bob@example.test");
        var report = MimeKit.MimeMessage.Load(new MemoryStream((await server.WaitForDeliveryAsync("alice@example.test"))[0]));
        Assert.Equal("Successful Mail Delivery Report", report.Subject);
        var status = Assert.Single(Assert.IsType<MimeKit.MultipartReport>(report.Body).OfType<MimeKit.MessageDeliveryStatus>());
        // Only bob asked (NOTIFY=SUCCESS); postmaster did not.
        var groups = status.StatusGroups.Where(g => g.Count > 0).ToList();
        Assert.Equal(2, groups.Count);
        Assert.Equal("rfc822; bob@example.test", groups[1]["Final-Recipient"]);
        Assert.Equal("delivered", groups[1]["Action"]);
        Assert.Equal("2.0.0", groups[1]["Status"]);
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in 15 s");
            await Task.Delay(50);
        }
    }
}
