using System.Diagnostics;
using System.Text;
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
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.DataTimeout = TimeSpan.FromSeconds(2);
            o.Limits.MinDataRate = 1000;
        });
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        await c.SendAsync("BDAT 100000\r\n");
        var clock = Stopwatch.StartNew();
        var reply = c.ReadReplyAsync();
        // 10 octets per 100 ms: each read well within DataTimeout, the rate far below 1000/s.
        while (!reply.IsCompleted && clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            try
            {
                await c.SendAsync(Encoding.ASCII.GetBytes("0123456789"));
            }
            catch (IOException)
            {
                break;
            }
            await Task.WhenAny(reply, Task.Delay(100));
        }
        Assert.True(reply.IsCompleted, $"still reading the dropped chunk after {clock.Elapsed}");
        var text = await reply;
        // The 503 for the chunk comes only after its octets; the deadline comes first.
        Assert.StartsWith("421 4.4.2 Message data arrives too slowly", text, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"cut off only after {clock.Elapsed}");
        await server.WaitForLogAsync("event=disconnect", "reason=\"data too slow\"");
    }
}
