using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;
using Postern.Server.Delivery;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Delivery;

/// <summary>
/// MX resolution and the SMTP client together, with real peers: NSD serves the zones, Postern listens
/// on one loopback address (127.0.0.12); other 127.0.0.x addresses stand for hosts that are down.
/// </summary>
public sealed class DeliveryByMx
{
    private static readonly string Zone = DnsServer.Zone("example.test", """
        @        IN MX 10 dead.example.test.
        @        IN MX 20 live.example.test.
        dead     IN A   127.0.0.11
        live     IN A   127.0.0.12
        """);

    private static readonly string Other = DnsServer.Zone("other.test", """
        nullmx   IN MX 0 .
        alldead  IN MX 10 dead.example.test.
        """);

    private static Task<SpooledMessage> SpoolAsync(params string[] to) => Spooled.MessageAsync(
        System.Text.Encoding.UTF8.GetBytes("From: sender@origin.example\r\nSubject: by mx\r\nMessage-ID: <mx-1@origin.example>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nvia the second MX\r\n"),
        "sender@origin.example", to);

    [Fact]
    public async Task DeadFirstMxFallsBackToTheNextAndNullMxBounces()
    {
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?> { ["example.test"] = Zone, ["other.test"] = Other, ["broken.test"] = null });
        await using var peer = await TestServer.StartAsync(o => o.Listeners =
        [
            new ListenerOptions { Name = "mx", Endpoint = "127.0.0.12:0", Role = ListenerRole.Mx },
            new ListenerOptions { Name = "submission", Endpoint = "127.0.0.12:0", Role = ListenerRole.Submission },
            new ListenerOptions { Name = "submissions", Endpoint = "127.0.0.12:0", Role = ListenerRole.Submissions },
        ]);
        var delivery = new DomainDelivery(new MxResolver([dns.Server], TimeSpan.FromSeconds(2)),
            new SmtpDeliveryClient("out.origin.example", TimeProvider.System, TimeSpan.FromSeconds(10)), peer.MxPort);

        var message = await SpoolAsync("alice@example.test", "nobody@example.test");
        var outcomes = await delivery.DeliverAsync(message, "example.test", ["alice@example.test", "nobody@example.test"]);
        Assert.IsType<DeliveryOutcome.Delivered>(outcomes[0].Outcome);
        Assert.StartsWith("550", Assert.IsType<DeliveryOutcome.Bounced>(outcomes[1].Outcome).Reply);
        Assert.Contains("via the second MX", Encoding.UTF8.GetString((await peer.WaitForDeliveryAsync("alice@example.test"))[0]));

        var nullMx = await delivery.DeliverAsync(message, "nullmx.other.test", ["x@nullmx.other.test"]);
        Assert.StartsWith("556 5.1.10", Assert.IsType<DeliveryOutcome.Bounced>(nullMx[0].Outcome).Reply);

        var allDead = await delivery.DeliverAsync(message, "alldead.other.test", ["x@alldead.other.test"]);
        var deferred = Assert.IsType<DeliveryOutcome.Deferred>(allDead[0].Outcome);
        Assert.Contains("dead.example.test[127.0.0.11]", deferred.Reason);

        var servfail = await delivery.DeliverAsync(message, "x.broken.test", ["x@x.broken.test"]);
        Assert.StartsWith("DNS:", Assert.IsType<DeliveryOutcome.Deferred>(servfail[0].Outcome).Reason);

        var nxdomain = await delivery.DeliverAsync(message, "nope.other.test", ["x@nope.other.test"]);
        Assert.StartsWith("550 5.1.2", Assert.IsType<DeliveryOutcome.Bounced>(nxdomain[0].Outcome).Reply);
    }
}
