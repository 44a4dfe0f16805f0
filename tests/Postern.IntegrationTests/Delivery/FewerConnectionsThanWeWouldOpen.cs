using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Delivery;

/// <summary>
/// A receiving server that takes fewer connections from one address than we open at once (Postern
/// itself with Limits.MaxConnectionsPerIp, Postfix with smtpd_client_connection_count_limit)
/// answers the extra ones 421 at the greeting. Those messages are tried again as soon as one of our
/// deliveries to it ends, over the connection that one leaves open, rather than after the retry
/// delay (5 minutes by default): here 24 messages reach a receiver that takes 2 connections at a
/// time, while the sender opens up to 8, in seconds.
/// </summary>
public sealed class FewerConnectionsThanWeWouldOpen
{
    private const int Messages = 24;

    [Fact]
    public async Task RefusedConnectionsAreRetriedAsSoonAsOneOfOursEnds()
    {
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            ["peer.test"] = DnsServer.Zone("peer.test", """
                @     IN MX 10 mx.peer.test.
                mx    IN A  127.0.0.74
                """),
        });
        await using var peer = await TestServer.StartAsync(o =>
        {
            o.Domains = ["peer.test"];
            o.Aliases.Clear();
            o.Aliases["carol@peer.test"] = ["postmaster@peer.test"];
            o.Limits.MaxConnectionsPerIp = 2;
            o.Listeners =
            [
                new ListenerOptions { Name = "mx", Endpoint = "127.0.0.74:0", Role = ListenerRole.Mx },
                new ListenerOptions { Name = "submission", Endpoint = "127.0.0.74:0", Role = ListenerRole.Submission },
                new ListenerOptions { Name = "submissions", Endpoint = "127.0.0.74:0", Role = ListenerRole.Submissions },
            ];
        });
        // Queued before the sender starts, so that its workers take them all at once.
        var dir = TestServer.NewDataDir();
        await Spooled.IntoAsync(dir, Messages, i => (new Envelope
        {
            From = "alice@example.test",
            Recipients = [new EnvelopeRecipient { Address = "carol@peer.test" }],
        }, $"Subject: crowd {i}\r\n\r\none of many\r\n"));
        await using var sender = await TestServer.StartOnAsync(dir, o =>
        {
            o.Dns.Servers = [dns.Server];
            o.Delivery.RemotePort = peer.MxPort;
            o.Delivery.RemoteConcurrency = 8;
            o.Delivery.DestinationConcurrency = 8;
        });

        // Well within the 5 minutes a deferral would wait.
        await peer.WaitForDeliveryAsync("postmaster@peer.test", Messages, timeoutMs: 30_000);
        Assert.Contains(sender.LogLines, l => l.Contains("status=deferred", StringComparison.Ordinal)
            && l.Contains("at the greeting of a new connection", StringComparison.Ordinal)
            && l.Contains("tried again when one of the deliveries under way to peer.test ends", StringComparison.Ordinal));
        await sender.WaitForLogAsync("event=removed", "reason=delivered");
    }
}
