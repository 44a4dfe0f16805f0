using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Delivery;

/// <summary>
/// Issue 12 (item 4, backscatter): NOTIFY=SUCCESS from a sender nobody vouches for (port 25, not
/// authenticated, not from Relay.TrustedNetworks) would send a report to an address that may be
/// forged. The message is delivered, and no report is queued. (An authenticated sender still gets
/// one: RelayedMailGoesOut.NotifySuccessGetsADeliveredReport.)
/// </summary>
public sealed class NoSuccessReportToAnUnknownSender
{
    [Fact]
    public async Task DeliveredWithoutAReport()
    {
        await using var server = await TestServer.StartAsync();
        await using (var c = await RawSmtp.OpenAsync(server.MxPort, ehlo: "client.sender.test"))
        {
            await c.CommandAsync("MAIL FROM:<victim@sender.test>", 250);
            await c.CommandAsync("RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE", 250);
            await c.CommandAsync("DATA", 354);
            await c.CommandAsync("From: victim@sender.test\r\nSubject: forged sender\r\n\r\nhello\r\n.", 250);
        }
        await server.WaitForDeliveryAsync("bob@example.test");
        var removed = await server.WaitForLogAsync("event=removed");
        Assert.DoesNotContain("event=bounce_queued", server.Logs, StringComparison.Ordinal);
        Assert.Contains("queue_id=", removed, StringComparison.Ordinal);
    }
}
