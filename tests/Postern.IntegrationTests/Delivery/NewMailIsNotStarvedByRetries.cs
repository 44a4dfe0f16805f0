using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Delivery;

/// <summary>
/// Fairness between new and deferred mail: a backlog of 100 messages coming due at once (here, at
/// start-up, each costing a full DNS timeout) must not hold up a new message behind it. Workers take
/// from new mail and retries in turn, so the new message is delivered while most of the backlog
/// still waits. In one line (first come, first served) it would wait for the whole backlog.
/// </summary>
public sealed class NewMailIsNotStarvedByRetries
{
    private const int Backlog = 100;

    [Fact]
    public async Task ANewMessageOvertakesABacklogOfRetries()
    {
        var dir = TestServer.NewDataDir();
        await Spooled.IntoAsync(dir, Backlog, i => (new Envelope
        {
            From = "app@origin.test",
            Recipients = [new EnvelopeRecipient { Address = $"user{i}@unreachable.example" }],
        }, $"Subject: backlog {i}\r\n\r\nwaiting\r\n"));
        // Two workers; every remote attempt waits for the dead resolver (2 x 500 ms).
        await using var server = await TestServer.StartOnAsync(dir, o =>
        {
            o.Delivery.LocalConcurrency = 1;
            o.Delivery.RemoteConcurrency = 1;
        });
        await using (var c = await RawSmtp.OpenAsync(server.MxPort))
        {
            await c.CommandAsync("MAIL FROM:<friend@elsewhere.example>", 250);
            await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
            await c.CommandAsync("DATA", 354);
            await c.CommandAsync("Subject: new\r\n\r\nnot behind the backlog\r\n.", 250);
        }
        await server.WaitForDeliveryAsync("alice@example.test", timeoutMs: 20_000);
        var attempted = server.LogLines.Count(l => l.Contains("event=delivery", StringComparison.Ordinal) && l.Contains("status=deferred", StringComparison.Ordinal));
        Assert.True(attempted < Backlog / 2, $"the new message waited for {attempted} of the {Backlog} retries");
    }
}
