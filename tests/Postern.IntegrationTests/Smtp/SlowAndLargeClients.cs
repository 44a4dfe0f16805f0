using System.Diagnostics;
using System.Text;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 4 item 5: a client that trickles (slowloris) is dropped on a deadline that a byte now and
/// then does not push back, and header sections are bounded in size, fields and hops.
/// </summary>
public sealed class SlowAndLargeClients
{
    /// <summary>Sends one byte every <paramref name="every"/> until the server closes; returns how long that took.</summary>
    private static async Task<(TimeSpan Took, string Reply)> TrickleAsync(RawSmtp c, string text, TimeSpan every, TimeSpan giveUp)
    {
        var clock = Stopwatch.StartNew();
        var reply = c.ReadReplyAsync();
        var i = 0;
        while (!reply.IsCompleted && clock.Elapsed < giveUp)
        {
            try
            {
                await c.SendAsync(Encoding.ASCII.GetBytes(text[i++ % text.Length].ToString()));
            }
            catch (IOException)
            {
                break;
            }
            await Task.WhenAny(reply, Task.Delay(every));
        }
        Assert.True(reply.IsCompleted || await Task.WhenAny(reply, Task.Delay(5000)) == reply, $"still connected after {clock.Elapsed}");
        return (clock.Elapsed, await reply);
    }

    [Fact]
    public async Task ACommandLineTrickledByteByByteIsCutOffAtTheCommandTimeout()
    {
        await using var server = await TestServer.StartAsync(o => o.Limits.CommandTimeout = TimeSpan.FromSeconds(2));
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        // Each byte comes well within the timeout; before, every byte started the timeout again.
        var (took, reply) = await TrickleAsync(c, "NOOP NOOP NOOP NOOP ", TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(20));
        Assert.StartsWith("421 4.4.2", reply);
        Assert.True(took < TimeSpan.FromSeconds(15), $"cut off only after {took}");
        await server.WaitForLogAsync("event=disconnect", "reason=timeout");
    }

    [Fact]
    public async Task MessageDataBelowTheMinimumRateIsCutOff()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.DataTimeout = TimeSpan.FromSeconds(2);
            o.Limits.MinDataRate = 1000;
        });
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        await c.CommandAsync("MAIL FROM:<slow@origin.test>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        // About 3 octets per 100 ms (30/s): each read comes well within DataTimeout, the rate never reaches 1000/s.
        var (took, reply) = await TrickleAsync(c, "Subject: slow\r\n", TimeSpan.FromMilliseconds(33), TimeSpan.FromSeconds(30));
        Assert.StartsWith("421 4.4.2 Message data arrives too slowly", reply);
        Assert.True(took < TimeSpan.FromSeconds(20), $"cut off only after {took}");
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
