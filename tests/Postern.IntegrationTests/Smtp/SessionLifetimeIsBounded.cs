using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 12 item 3: a client that keeps sending valid commands within the command timeout held its
/// connection for ever. Limits.SessionLifetime bounds a session: past it, the next command gets
/// 421 4.4.2 and the connection is closed. On an injected clock (the server's one owner of time,
/// TimeoutControl), so the test moves time instead of waiting for it.
/// </summary>
public sealed class SessionLifetimeIsBounded
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task ABusyClientIsClosedAtTheLifetime()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.SessionLifetime = Lifetime;
            o.Limits.MaxJunkCommands = 10_000;
        }, time: time);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        // A NOOP every 3 s, well inside the command timeout: six of them are within the lifetime.
        for (var i = 0; i < 6; i++)
        {
            Assert.StartsWith("250", await c.CommandAsync("NOOP"), StringComparison.Ordinal);
            time.Advance(TimeSpan.FromSeconds(3));
        }
        Assert.StartsWith("250", await c.CommandAsync("NOOP"), StringComparison.Ordinal);
        time.Advance(TimeSpan.FromSeconds(2)); // 20 s: the lifetime has passed
        var reply = await c.CommandAsync("NOOP");
        Assert.StartsWith("421 4.4.2", reply, StringComparison.Ordinal);
        Assert.True(await c.IsClosedAsync());
        await server.WaitForLogAsync("event=disconnect", "reason=\"session lifetime\"");
        await server.WaitForLogAsync("event=rejected", "reason=session_lifetime");
    }

    [Fact]
    public async Task AnIdleClientIsClosedAtTheLifetimeEvenWithALongerCommandTimeout()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.SessionLifetime = Lifetime;
            o.Limits.CommandTimeout = TimeSpan.FromMinutes(5);
        }, time: time);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        var reply = c.ReadReplyAsync();
        time.Advance(Lifetime - TimeSpan.FromSeconds(1));
        await Task.Delay(100); // nothing may arrive before the lifetime (a bounded look, not a wait on success)
        Assert.False(reply.IsCompleted, "closed before the lifetime");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.StartsWith("421 4.4.2", await reply, StringComparison.Ordinal);
        await server.WaitForLogAsync("event=disconnect", "reason=\"session lifetime\"");
    }

    [Fact]
    public async Task TheCommandTimeoutIsExactOnTheServersClock()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var server = await TestServer.StartAsync(o => o.Limits.CommandTimeout = TimeSpan.FromMinutes(5), time: time);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        var reply = c.ReadReplyAsync();
        time.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromSeconds(1));
        await Task.Delay(100);
        Assert.False(reply.IsCompleted, "closed before the command timeout");
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.StartsWith("421 4.4.2", await reply, StringComparison.Ordinal);
        await server.WaitForLogAsync("event=disconnect", "reason=timeout");
    }
}
