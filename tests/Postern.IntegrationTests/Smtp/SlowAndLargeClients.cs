using System.Text;
using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 4 item 5: a client that trickles (slowloris) is dropped on a deadline that a byte now and
/// then does not push back, and header sections are bounded in size, fields and hops.
/// </summary>
public sealed class SlowAndLargeClients
{
    /// <summary>
    /// Sends one byte, then moves the server's clock on by <paramref name="every"/>, until the server
    /// closes; returns how much of the server's time that took (the deadlines run on that clock).
    /// </summary>
    internal static async Task<(TimeSpan Took, string Reply)> TrickleAsync(RawSmtp c, FakeTimeProvider time, string text, TimeSpan every, TimeSpan giveUp)
    {
        var start = time.GetUtcNow();
        var reply = c.ReadReplyAsync();
        var i = 0;
        while (!reply.IsCompleted && time.GetUtcNow() - start < giveUp)
        {
            try
            {
                await c.SendAsync(Encoding.ASCII.GetBytes(text[i++ % text.Length].ToString()));
            }
            catch (IOException)
            {
                break;
            }
            // A moment for the server to read the byte before its clock moves (it only makes the
            // server's count lag, which can only make the deadline earlier, never later).
            await Task.WhenAny(reply, Task.Delay(5));
            time.Advance(every);
        }
        return (time.GetUtcNow() - start, await reply.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task ACommandLineTrickledByteByByteIsCutOffAtTheCommandTimeout()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o => o.Limits.CommandTimeout = TimeSpan.FromSeconds(2), time: time);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        // Each byte comes well within the timeout; before, every byte started the timeout again.
        var (took, reply) = await TrickleAsync(c, time, "NOOP NOOP NOOP NOOP ", TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(20));
        Assert.StartsWith("421 4.4.2", reply);
        Assert.InRange(took, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(3));
        await server.WaitForLogAsync("event=disconnect", "reason=timeout");
    }

    [Fact]
    public async Task MessageDataBelowTheMinimumRateIsCutOff()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.DataTimeout = TimeSpan.FromSeconds(2);
            o.Limits.MinDataRate = 1000;
        }, time: time);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        await c.CommandAsync("MAIL FROM:<slow@origin.test>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        // One octet per 33 ms (30/s): each read comes well within DataTimeout, the rate never reaches 1000/s.
        // The deadline: DataTimeout plus one second per 1000 octets, about 2.07 s.
        var (took, reply) = await TrickleAsync(c, time, "Subject: slow\r\n", TimeSpan.FromMilliseconds(33), TimeSpan.FromSeconds(30));
        Assert.StartsWith("421 4.4.2 Message data arrives too slowly", reply);
        Assert.InRange(took, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(2.5));
        await server.WaitForLogAsync("event=disconnect", "reason=\"data too slow\"");
        Assert.Empty(server.Delivered("alice@example.test"));
    }

    private static string Message(int fields, int hops, int padding = 0)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < hops; i++)
        {
            sb.Append($"Received: from hop{i}.example by hop{i + 1}.example; Sat, 28 Nov 2026 10:00:00 +0000\r\n");
        }
        for (var i = 0; i < fields; i++)
        {
            sb.Append($"X-Field-{i}: {new string('v', padding)}\r\n");
        }
        return sb + "Subject: limits\r\n\r\nbody\r\n";
    }

    private static async Task<string> SendAsync(RawSmtp c, string message)
    {
        await c.CommandAsync("MAIL FROM:<a@origin.test>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        return await c.CommandAsync(message + ".");
    }

    [Fact]
    public async Task HeaderSectionsAreBoundedInHopsFieldsAndSize()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.MaxHops = 10;
            o.Limits.MaxHeaderFields = 30;
            o.Limits.MaxHeaderSize = 4096;
        });
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        Assert.StartsWith("554 5.4.6 Too many hops", await SendAsync(c, Message(fields: 0, hops: 11)));
        Assert.StartsWith("552 5.3.4 Message has too many header fields", await SendAsync(c, Message(fields: 30, hops: 0)));
        Assert.StartsWith("552 5.3.4 Message header section is too large", await SendAsync(c, Message(fields: 10, hops: 0, padding: 500)));
        // The session goes on, and a message at the limits is taken.
        Assert.StartsWith("250 ", await SendAsync(c, Message(fields: 19, hops: 10)));
        await server.WaitForDeliveryAsync("alice@example.test");
        await server.WaitForLogAsync("event=rejected", "command=DATA", "code=554", "enhanced=5.4.6");

        // BDAT is held to the same.
        await c.CommandAsync("MAIL FROM:<a@origin.test>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        var bytes = Encoding.ASCII.GetBytes(Message(fields: 0, hops: 11));
        await c.SendAsync(Encoding.ASCII.GetBytes($"BDAT {bytes.Length} LAST\r\n").Concat(bytes).ToArray());
        Assert.StartsWith("554 5.4.6", await c.ReadReplyAsync());
    }
}
