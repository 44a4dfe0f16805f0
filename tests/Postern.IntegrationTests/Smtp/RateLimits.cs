using System.Net;
using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 4 item 1: each limit with its own reply, on an injected clock. Other loopback addresses
/// (127.0.0.2, 127.0.0.3) stand for other clients.
/// </summary>
public sealed class RateLimits
{
    private static readonly IPAddress Other = IPAddress.Parse("127.0.0.2");

    [Fact]
    public async Task ConnectionsPerMinuteFromOneAddressThenAgainAfterAMinute()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o => o.Limits.MaxConnectionsPerIpPerMinute = 3, time: time);
        for (var i = 0; i < 3; i++)
        {
            await using var ok = await RawSmtp.OpenAsync(server.MxPort, ehlo: null);
        }
        await using (var refused = await RawSmtp.ConnectAsync(server.MxPort))
        {
            Assert.StartsWith("421 4.7.0 Too many new connections", await refused.ReadReplyAsync());
            Assert.True(await refused.IsClosedAsync());
        }
        await server.WaitForLogAsync("event=rejected", "command=CONNECT", "code=421", "ip=127.0.0.1", "connections per minute from 127.0.0.1");
        // Another client is not affected.
        await using (var other = await RawSmtp.OpenAsync(server.MxPort, ehlo: null, from: Other))
        {
        }
        time.Advance(TimeSpan.FromMinutes(2));
        await using var later = await RawSmtp.OpenAsync(server.MxPort);
    }

    [Fact]
    public async Task TrustedNetworksAreNotCountedByAddress()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.MaxConnectionsPerIpPerMinute = 2;
            o.Limits.MaxMessagesPerHourPerIp = 1;
            o.Relay.TrustedNetworks = ["127.0.0.0/8"];
        });
        for (var i = 0; i < 4; i++)
        {
            await using var c = await RawSmtp.OpenAsync(server.MxPort);
            await c.CommandAsync("MAIL FROM:<app@origin.test>", 250);
        }
    }

    [Fact]
    public async Task MessagesPerHourFromOneAddress()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o => o.Limits.MaxMessagesPerHourPerIp = 2, time: time);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        for (var i = 0; i < 2; i++)
        {
            await c.CommandAsync("MAIL FROM:<a@origin.test>", 250);
            await c.CommandAsync("RSET", 250);
        }
        Assert.StartsWith("450 4.7.1", await c.CommandAsync("MAIL FROM:<a@origin.test>", 450));
        await server.WaitForLogAsync("event=rejected", "command=MAIL", "code=450", "enhanced=4.7.1", "messages per hour from 127.0.0.1");
        await using (var other = await RawSmtp.OpenAsync(server.MxPort, from: Other))
        {
            await other.CommandAsync("MAIL FROM:<a@origin.test>", 250);
        }
        // Two hours on, the idle session is long gone (Limits.CommandTimeout on the same clock): a new one.
        time.Advance(TimeSpan.FromHours(2));
        await using var later = await RawSmtp.OpenAsync(server.MxPort);
        await later.CommandAsync("MAIL FROM:<a@origin.test>", 250);
    }

    [Fact]
    public async Task RecipientsPerHourOfAUserFromAnyAddress()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o => o.Limits.MaxRecipientsPerHourPerUser = 3, time: time);
        await using var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true);
        Assert.StartsWith("235", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
        await c.CommandAsync("MAIL FROM:<alice@example.test>", 250);
        for (var i = 0; i < 3; i++)
        {
            await c.CommandAsync($"RCPT TO:<friend{i}@far.example>", 250);
        }
        Assert.StartsWith("452 4.5.3 Too many recipients from you this hour", await c.CommandAsync("RCPT TO:<friend3@far.example>", 452));
        await server.WaitForLogAsync("event=rejected", "command=RCPT", "code=452", "recipients per hour of user alice@example.test");

        // The same user from another address is still over the limit; another user is not.
        await using var elsewhere = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true, from: Other);
        Assert.StartsWith("235", await elsewhere.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
        await elsewhere.CommandAsync("MAIL FROM:<alice@example.test>", 250);
        await elsewhere.CommandAsync("RCPT TO:<friend4@far.example>", 452);
        await using var bob = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true);
        Assert.StartsWith("235", await bob.AuthPlainAsync("bob@example.test", TestServer.BobPassword));
        await bob.CommandAsync("MAIL FROM:<bob@example.test>", 250);
        await bob.CommandAsync("RCPT TO:<friend@far.example>", 250);

        time.Advance(TimeSpan.FromHours(2));
        await using var later = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true, from: Other);
        Assert.StartsWith("235", await later.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
        await later.CommandAsync("MAIL FROM:<alice@example.test>", 250);
        await later.CommandAsync("RCPT TO:<friend5@far.example>", 250);
    }

    [Fact]
    public async Task TheTarpitHoldsBackRefusalsFromTheThresholdOn()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.TarpitAfterErrors = 2;
            o.Limits.TarpitDelay = TimeSpan.FromSeconds(10);
        }, time: time);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        Assert.StartsWith("500", await c.CommandAsync("FIRST BAD COMMAND"));
        var second = c.CommandAsync("SECOND BAD COMMAND");
        await Task.Delay(300);
        Assert.False(second.IsCompleted, "the second refusal must wait for the tarpit");
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.StartsWith("500", await second.WaitAsync(TimeSpan.FromSeconds(10)));
        // The third waits twice as long: 10 s is not enough.
        var third = c.CommandAsync("THIRD BAD COMMAND");
        await Task.Delay(100);
        time.Advance(TimeSpan.FromSeconds(10));
        await Task.Delay(300);
        Assert.False(third.IsCompleted, "the third refusal waits twice the delay");
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.StartsWith("500", await third.WaitAsync(TimeSpan.FromSeconds(10)));
        // A good command after them is answered at once.
        Assert.StartsWith("250", await c.CommandAsync("NOOP"));
    }
}
