using System.Net;
using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Delivery;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Delivery;

/// <summary>The outbound SMTP client (MailKit) against a real receiving server: Postern on loopback.</summary>
public sealed class SmtpDeliveryToAPeer
{
    private static readonly byte[] Message = Encoding.UTF8.GetBytes(
        "From: Sender <sender@origin.example>\r\nTo: alice@example.test\r\nSubject: outbound\r\n" +
        "Message-ID: <outbound-1@origin.example>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n" +
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
        ".leading dot\r\n..two dots\r\n.\r\nGrüße, 日本語\r\n" + new string('x', 998) + "\r\nlast line\r\n");

    private static async Task<(SpooledMessage Message, string Dir)> SpoolAsync(byte[] content, string from, params string[] to) =>
        (await Spooled.MessageAsync(content, from, to, notify: "FAILURE"), "");

    [Fact]
    public async Task DeliversOverStartTlsByteForByteWithPerRecipientOutcomes()
    {
        await using var peer = await TestServer.StartAsync();
        var (spooled, _) = await SpoolAsync(Message, "sender@origin.example", "alice@example.test", "nobody@example.test", "bob@example.test");
        var client = new SmtpDeliveryClient("out.origin.example", TimeProvider.System, TimeSpan.FromSeconds(20));
        var outcomes = await client.DeliverAsync(spooled, ["alice@example.test", "nobody@example.test", "bob@example.test"], IPAddress.Loopback, peer.MxPort);

        Assert.IsType<DeliveryOutcome.Delivered>(outcomes[0].Outcome);
        var refused = Assert.IsType<DeliveryOutcome.Bounced>(outcomes[1].Outcome);
        Assert.StartsWith("550 ", refused.Reply);
        Assert.Contains("No such user", refused.Reply);
        Assert.IsType<DeliveryOutcome.Delivered>(outcomes[2].Outcome);
        Assert.Contains("over TLSv1.3", ((DeliveryOutcome.Delivered)outcomes[0].Outcome).Detail);
        Assert.Equal(new Hop("127.0.0.1", IPAddress.Loopback, peer.MxPort, "TLSv1.3"), outcomes[0].Outcome.Via);
        Assert.Equal(outcomes[0].Outcome.Via, outcomes[1].Outcome.Via); // the refusal names the server too

        var received = (await peer.WaitForDeliveryAsync("alice@example.test"))[0];
        Assert.Equal(Message, TestServer.BodyAfterTrace(received));
        var text = Encoding.UTF8.GetString(received);
        Assert.StartsWith("Return-Path: <sender@origin.example>", text);
        Assert.Contains("Received: from out.origin.example ([127.0.0.1])", text);
        Assert.Contains("with ESMTPS id", text);
        await peer.WaitForDeliveryAsync("bob@example.test");
    }

    [Fact]
    public async Task NullSenderStaysNull()
    {
        await using var peer = await TestServer.StartAsync();
        var (spooled, _) = await SpoolAsync(Message, "", "alice@example.test");
        var outcomes = await new SmtpDeliveryClient("out.origin.example", TimeProvider.System).DeliverAsync(spooled, ["alice@example.test"], IPAddress.Loopback, peer.MxPort);
        Assert.IsType<DeliveryOutcome.Delivered>(outcomes[0].Outcome);
        Assert.StartsWith("Return-Path: <>\r\n", Encoding.UTF8.GetString((await peer.WaitForDeliveryAsync("alice@example.test"))[0]));
    }

    [Fact]
    public async Task TooBigForThePeerBouncesBeforeSending()
    {
        await using var peer = await TestServer.StartAsync(o => o.Limits.MaxMessageSize = 1024);
        var (spooled, _) = await SpoolAsync(Message, "sender@origin.example", "alice@example.test");
        var outcomes = await new SmtpDeliveryClient("out.origin.example", TimeProvider.System).DeliverAsync(spooled, ["alice@example.test"], IPAddress.Loopback, peer.MxPort);
        Assert.StartsWith("552 5.3.4", Assert.IsType<DeliveryOutcome.Bounced>(outcomes[0].Outcome).Reply);
        await Task.Delay(300);
        Assert.Empty(peer.Delivered("alice@example.test"));
    }

    [Fact]
    public async Task NobodyListeningDefers()
    {
        var (spooled, _) = await SpoolAsync(Message, "sender@origin.example", "alice@example.test");
        using var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop(); // now nothing listens there
        var outcomes = await new SmtpDeliveryClient("out.origin.example", TimeProvider.System).DeliverAsync(spooled, ["alice@example.test"], IPAddress.Loopback, port);
        Assert.IsType<DeliveryOutcome.Deferred>(outcomes[0].Outcome);
    }

    [Fact]
    public async Task TemporaryRefusalDefersAndPermanentBounces()
    {
        // Relay denied (554 5.7.1) for a domain the peer does not serve: permanent.
        await using var peer = await TestServer.StartAsync();
        var (spooled, _) = await SpoolAsync(Message, "sender@origin.example", "someone@elsewhere.example");
        var outcomes = await new SmtpDeliveryClient("out.origin.example", TimeProvider.System).DeliverAsync(spooled, ["someone@elsewhere.example"], IPAddress.Loopback, peer.MxPort);
        Assert.StartsWith("554", Assert.IsType<DeliveryOutcome.Bounced>(outcomes[0].Outcome).Reply);
    }

    [Fact]
    public async Task OneConnectionCarriesSeveralMessagesAndAClosedOneIsReplaced()
    {
        // The peer drops a session after one second without a command.
        await using var peer = await TestServer.StartAsync(o => o.Limits.CommandTimeout = TimeSpan.FromSeconds(1));
        await using var client = new SmtpDeliveryClient("out.origin.example", TimeProvider.System, TimeSpan.FromSeconds(20));
        for (var i = 0; i < 3; i++)
        {
            var spooled = await Spooled.MessageAsync(Message, "sender@origin.example", ["alice@example.test"]);
            var outcomes = await client.DeliverAsync(spooled, ["alice@example.test"], IPAddress.Loopback, peer.MxPort);
            Assert.IsType<DeliveryOutcome.Delivered>(outcomes[0].Outcome);
        }
        Assert.Equal(1, client.ConnectionsOpened);
        Assert.Equal(1, peer.LogLines.Count(l => l.Contains("event=connect", StringComparison.Ordinal)));
        await peer.WaitForDeliveryAsync("alice@example.test", 3);

        // Idle past the peer's timeout (but within our 5 s): the peer closed it; the next message
        // goes over a new connection, and the attempt is not a failure.
        await peer.WaitForLogAsync("event=disconnect", "reason=timeout");
        var late = await Spooled.MessageAsync(Message, "sender@origin.example", ["bob@example.test"]);
        Assert.IsType<DeliveryOutcome.Delivered>((await client.DeliverAsync(late, ["bob@example.test"], IPAddress.Loopback, peer.MxPort))[0].Outcome);
        Assert.Equal(2, client.ConnectionsOpened);
        await peer.WaitForDeliveryAsync("bob@example.test");
    }
}
