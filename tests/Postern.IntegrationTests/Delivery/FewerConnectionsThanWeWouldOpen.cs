using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Delivery;

/// <summary>
/// A receiving server that takes fewer connections from one address than we open at once (Postern
/// itself with Limits.MaxConnectionsPerIp, Postfix with smtpd_client_connection_count_limit)
/// answers the extra ones 421 at the greeting. Those messages are tried again as soon as one of our
/// deliveries to it ends, over the connection that one leaves open, rather than after the retry
/// delay (5 minutes by default), and fewer go at once from then on (each refusal lowers the number
/// by one, for 10 minutes): here 24 messages reach a receiver that takes 2 connections at a time,
/// while the sender opens up to 8, in seconds and with a handful of refusals.
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
        try
        {
            await peer.WaitForDeliveryAsync("postmaster@peer.test", Messages, timeoutMs: 30_000);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}\nSender's log:\n{sender.Logs}", e);
        }
        Assert.Contains(sender.LogLines, l => l.Contains("status=deferred", StringComparison.Ordinal)
            && l.Contains("at the greeting of a new connection", StringComparison.Ordinal)
            && l.Contains("tried again when one of the deliveries under way to peer.test ends", StringComparison.Ordinal));
        await sender.WaitForLogAsync("event=removed", "reason=delivered");
        // And it learnt: the first burst opens 8 where 2 are taken, each refusal lowers the number
        // at once by one, and then no more than two go at once, instead of opening (and being
        // refused) again and again (hundreds of refusals for these 24 messages, otherwise).
        var refused = peer.LogLines.Count(l => l.Contains("event=connection_refused", StringComparison.Ordinal));
        Assert.True(refused <= 12, $"{refused} connections refused");
    }
}
