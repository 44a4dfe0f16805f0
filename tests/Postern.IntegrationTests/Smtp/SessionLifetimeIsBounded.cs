using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 12 item 3: a client that keeps sending valid commands within the command timeout held its
/// connection for ever. Limits.SessionLifetime bounds a session: past it, the next command gets
/// 421 4.4.2 and the connection is closed.
/// </summary>
public sealed class SessionLifetimeIsBounded
{
    [Fact]
    public async Task ABusyClientIsClosedAtTheLifetime()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.SessionLifetime = TimeSpan.FromSeconds(2);
            o.Limits.MaxJunkCommands = 10_000;
        });
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string reply;
        do
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), "the session outlived its lifetime");
            await Task.Delay(100);
            reply = await c.CommandAsync("NOOP");
        }
        while (reply.StartsWith("250", StringComparison.Ordinal));
        Assert.StartsWith("421 4.4.2", reply, StringComparison.Ordinal);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1.5), $"closed after only {clock.Elapsed}");
        Assert.True(await c.IsClosedAsync());
        await server.WaitForLogAsync("event=disconnect", "reason=\"session lifetime\"");
    }

    [Fact]
    public async Task AnIdleClientIsClosedAtTheLifetimeEvenWithALongerCommandTimeout()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.SessionLifetime = TimeSpan.FromSeconds(2);
            o.Limits.CommandTimeout = TimeSpan.FromMinutes(5);
        });
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var reply = await c.ReadReplyAsync();
        Assert.StartsWith("421 4.4.2", reply, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"closed only after {clock.Elapsed}");
    }
}
