using System.Net;
using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 4 item 3: connection triage on the mx role (Postfix's postscreen is the model), on an
/// injected clock. Other loopback addresses stand for other clients.
/// </summary>
public sealed class ConnectionTriage
{
    private static readonly TimeSpan Pause = TimeSpan.FromSeconds(6);

    private static Task<TestServer> StartAsync(FakeTimeProvider time) => TestServer.StartAsync(o =>
    {
        o.Triage.Enabled = true;
        o.Triage.GreetingPause = Pause;
        o.Triage.CacheTime = TimeSpan.FromHours(1);
    }, time: time);

    /// <summary>Advances the injected clock past the pause and reads the greeting.</summary>
    private static async Task<string> GreetingAsync(RawSmtp c, FakeTimeProvider time)
    {
        var greeting = c.ReadReplyAsync();
        await Task.Delay(200);
        Assert.False(greeting.IsCompleted, "the greeting must wait for the pause");
        time.Advance(Pause);
        return await greeting.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task AGoodClientWaitsOnceThenIsGreetedAtOnce()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await StartAsync(time);
        await using (var c = await RawSmtp.ConnectAsync(server.MxPort))
        {
            Assert.StartsWith("220 ", await GreetingAsync(c, time));
            await c.CommandAsync("EHLO good.example", 250);
            await c.CommandAsync("MAIL FROM:<a@good.example>", 250);
            await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
            await c.CommandAsync("QUIT", 221);
        }
        // Cached: the next connection is greeted without the pause.
        await using (var again = await RawSmtp.ConnectAsync(server.MxPort))
        {
            Assert.StartsWith("220 ", await again.ReadReplyAsync().WaitAsync(TimeSpan.FromSeconds(5)));
        }
        // Submission is never paused: people's mail programs are not on trial.
        await using (var user = await RawSmtp.ConnectAsync(server.SubmissionPort, from: IPAddress.Parse("127.0.0.5")))
        {
            Assert.StartsWith("220 ", await user.ReadReplyAsync().WaitAsync(TimeSpan.FromSeconds(5)));
        }
    }

    [Fact]
    public async Task TalkingBeforeTheGreetingIsRefused()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await StartAsync(time);
        await using var bot = await RawSmtp.ConnectAsync(server.MxPort, from: IPAddress.Parse("127.0.0.6"));
        await bot.SendAsync("EHLO bot.example\r\nMAIL FROM:<spam@bot.example>\r\n");
        Assert.StartsWith("554 5.5.1 Protocol error: you talked before my greeting", await bot.ReadReplyAsync());
        Assert.True(await bot.IsClosedAsync());
        await server.WaitForLogAsync("event=rejected", "ip=127.0.0.6", "command=CONNECT", "code=554", "talked before the greeting: EHLO bot.example");
        await server.WaitForLogAsync("event=disconnect", "ip=127.0.0.6", "reason=pregreet");
    }

    [Fact]
    public async Task AnHttpRequestIsAnsweredAndDropped()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await StartAsync(time);
        // Before the greeting (a browser talks first)...
        await using (var browser = await RawSmtp.ConnectAsync(server.MxPort, from: IPAddress.Parse("127.0.0.7")))
        {
            await browser.SendAsync("GET / HTTP/1.1\r\nHost: mx.example.test\r\n\r\n");
            Assert.StartsWith("554 5.7.0 This is an SMTP server", await browser.ReadReplyAsync());
            Assert.True(await browser.IsClosedAsync());
        }
        // ...and after it, on any role.
        await using (var proxyProbe = await RawSmtp.ConnectAsync(server.SubmissionPort))
        {
            await proxyProbe.ExpectAsync(220);
            Assert.StartsWith("554 5.7.0", await proxyProbe.CommandAsync("CONNECT mx.example.test:25 HTTP/1.0"));
            Assert.True(await proxyProbe.IsClosedAsync());
        }
        await server.WaitForLogAsync("event=disconnect", "reason=\"non-SMTP input\"");
    }

    [Fact]
    public async Task PipeliningBeforeTheEhloReplyIsRefused()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await StartAsync(time);
        await using var bot = await RawSmtp.ConnectAsync(server.MxPort, from: IPAddress.Parse("127.0.0.8"));
        Assert.StartsWith("220 ", await GreetingAsync(bot, time));
        await bot.SendAsync("EHLO bot.example\r\nMAIL FROM:<spam@bot.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
        Assert.StartsWith("554 5.5.1 Protocol error: commands sent before the EHLO reply", await bot.ReadReplyAsync());
        Assert.True(await bot.IsClosedAsync());
        await server.WaitForLogAsync("event=disconnect", "ip=127.0.0.8", "reason=\"early pipelining\"");
        // Not cached as good: the next connection is paused again.
        await using var again = await RawSmtp.ConnectAsync(server.MxPort, from: IPAddress.Parse("127.0.0.8"));
        Assert.StartsWith("220 ", await GreetingAsync(again, time));
    }

    [Fact]
    public async Task TrustedNetworksSkipTriage()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Triage.Enabled = true;
            o.Relay.TrustedNetworks = ["127.0.0.9/32"];
        }, time: time);
        await using var c = await RawSmtp.ConnectAsync(server.MxPort, from: IPAddress.Parse("127.0.0.9"));
        Assert.StartsWith("220 ", await c.ReadReplyAsync().WaitAsync(TimeSpan.FromSeconds(5)));
        await c.SendAsync("EHLO app.example\r\nMAIL FROM:<a@app.example>\r\n");
        Assert.StartsWith("250", await c.ReadReplyAsync());
        Assert.StartsWith("250", await c.ReadReplyAsync());
    }
}
