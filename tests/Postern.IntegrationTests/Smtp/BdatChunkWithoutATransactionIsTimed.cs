using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 12 item 3: a BDAT chunk sent before MAIL (read only to be dropped) had no deadline and no
/// minimum rate: a byte now and then held the session. It is read under Limits.DataTimeout and
/// Limits.MinDataRate like message data.
/// </summary>
public sealed class BdatChunkWithoutATransactionIsTimed
{
    [Fact]
    public async Task ATrickledChunkBeforeMailIsCutOffAtTheMinimumRate()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.DataTimeout = TimeSpan.FromSeconds(2);
            o.Limits.MinDataRate = 1000;
        }, time: time);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        await c.SendAsync("BDAT 100000\r\n");
        // One octet per 10 ms (100/s): each read well within DataTimeout, the rate far below 1000/s.
        var (took, text) = await SlowAndLargeClients.TrickleAsync(c, time, "0123456789", TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(30));
        // The 503 for the chunk comes only after its octets; the deadline comes first.
        Assert.StartsWith("421 4.4.2 Message data arrives too slowly", text, StringComparison.Ordinal);
        Assert.InRange(took, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2.5));
        await server.WaitForLogAsync("event=disconnect", "reason=\"data too slow\"");
    }
}
