using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Delivery;

/// <summary>
/// A peer that answers 4xx a few times, then accepts: a private Postfix instance (127.0.0.32) whose
/// check_recipient_access map says "450 4.2.0 try later" for later@pf.test until the test removes
/// the entry. Postern's clock is a FakeTimeProvider, so the backoff is advanced, never waited for.
/// </summary>
public sealed class RetriesUntilAccepted
{
    private const string Address = "127.0.0.32";
    private const string TryLater = "450 4.2.0 <later@pf.test>: Recipient address rejected: try later";
    private static readonly TimeSpan Initial = TimeSpan.FromMinutes(5);

    private static readonly string Zone = DnsServer.Zone("pf.test", $"""
        @        IN MX 10 mx.pf.test.
        mx       IN A   {Address}

        """);

    [Fact]
    public async Task DeliveredAfterRetries()
    {
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?> { ["pf.test"] = Zone });
        await using var postfix = await PostfixPeer.StartAsync(Address, "pf.test", "later");
        await postfix.SetRecipientAccessAsync(("later@pf.test", "450 4.2.0 try later"));
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Relay.TrustedNetworks = ["127.0.0.0/8"];
            o.Dns.Servers = [dns.Server];
            o.Delivery.RemotePort = postfix.EndPoint.Port;
            o.Delivery.RetryInitialDelay = Initial;
            o.Delivery.RetryMaxDelay = TimeSpan.FromHours(1);
        }, time: time);

        string id;
        await using (var c = await RawSmtp.OpenAsync(server.MxPort))
        {
            await c.CommandAsync("MAIL FROM:<app@origin.test>", 250);
            await c.CommandAsync("RCPT TO:<later@pf.test>", 250);
            await c.CommandAsync("DATA", 354);
            id = (await c.CommandAsync("From: app@origin.test\r\nSubject: patience\r\nMessage-ID: <p1@origin.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nthird time lucky\r\n.", 250)).Split(' ')[^1];
        }

        // The first attempt goes at once and is deferred with Postfix's own words.
        await WaitForDeferralsAsync(server, postfix, id, 1);
        // The retry waits Delivery.RetryInitialDelay on Postern's clock...
        time.Advance(Initial);
        await WaitForDeferralsAsync(server, postfix, id, 2);
        // ...then twice as long: half of it is not enough.
        time.Advance(Initial);
        await Task.Delay(300);
        Assert.Equal(2, Deferrals(server, id));
        time.Advance(Initial);
        await WaitForDeferralsAsync(server, postfix, id, 3);
        Assert.Empty(postfix.Delivered("later"));

        // Postfix changes its mind; the next attempt, 20 minutes on, is accepted.
        await postfix.SetRecipientAccessAsync();
        time.Advance(4 * Initial);
        var arrived = System.Text.Encoding.UTF8.GetString(Assert.Single(await postfix.WaitForDeliveryAsync("later")));
        Assert.Contains("Subject: patience\n", arrived, StringComparison.Ordinal);
        Assert.Contains("third time lucky\n", arrived, StringComparison.Ordinal);
        await server.WaitForLogAsync("event=delivery", $"queue_id={id}", "later@pf.test", "status=sent");
        await server.WaitForLogAsync("event=removed", $"queue_id={id}");
        Assert.False(File.Exists(Path.Combine(server.DataDir, "queue", "messages", id)));
        Assert.Equal(3, Deferrals(server, id));
        // Postfix saw three refusals and one delivery, one connection each.
        Assert.Equal(3, postfix.Log.Split('\n').Count(l => l.Contains("NOQUEUE: reject: RCPT from", StringComparison.Ordinal) && l.Contains(TryLater, StringComparison.Ordinal)));
        await postfix.WaitForLogAsync("to=<later@pf.test>", "status=sent (delivered to maildir)");
    }

    private static int Deferrals(TestServer server, string id) => server.LogLines.Count(l =>
        l.Contains("event=delivery", StringComparison.Ordinal) && l.Contains($"queue_id={id}", StringComparison.Ordinal)
        && l.Contains("status=deferred", StringComparison.Ordinal) && l.Contains(TryLater, StringComparison.Ordinal));

    /// <summary>
    /// Waits for the <paramref name="count"/>th deferral, and for the pass that made it to finish: its
    /// event=queued_remote line comes after it has set the retry timer. Advancing the fake clock while
    /// a pass is between reading the clock and setting that timer would put the retry one delay late.
    /// </summary>
    private static async Task WaitForDeferralsAsync(TestServer server, PostfixPeer postfix, string id, int count)
    {
        var deadline = Environment.TickCount64 + 10_000;
        while (Deferrals(server, id) < count || server.LogLines.Count(l => l.Contains("event=queued_remote", StringComparison.Ordinal)
            && l.Contains($"queue_id={id}", StringComparison.Ordinal)) < count)
        {
            Assert.True(Environment.TickCount64 < deadline, $"not {count} deferrals with \"{TryLater}\" within 10 s. Log:\n{server.Logs}\nPostfix log:\n{postfix.Log}");
            await Task.Delay(20);
        }
        Assert.Equal(count, Deferrals(server, id));
    }
}
