using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 12 item 3: NOOP, RSET, VRFY, EXPN and HELP were never counted (2,000 NOOPs answered), so a
/// client could hold a connection for ever. They count as junk (Postfix's smtpd_junk_command_limit):
/// past Limits.MaxJunkCommands the session gets 421 4.7.0 and is closed; a message accepted resets the count.
/// </summary>
public sealed class JunkCommandsAreLimited
{
    [Fact]
    public async Task TheHundredAndFirstNoopByDefaultEndsTheSession()
    {
        await using var server = await TestServer.StartAsync();
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        for (var i = 0; i < 100; i++)
        {
            await c.CommandAsync("NOOP", 250);
        }
        var reply = await c.CommandAsync("NOOP");
        Assert.StartsWith("421 4.7.0", reply, StringComparison.Ordinal);
        Assert.True(await c.IsClosedAsync());
        await server.WaitForLogAsync("event=rejected", "reason=junk_commands");
        await server.WaitForLogAsync("event=disconnect", "reason=\"too many junk commands\"");
    }

    [Fact]
    public async Task EveryKindOfJunkCountsAndAnAcceptedMessageResetsTheCount()
    {
        await using var server = await TestServer.StartAsync(o => o.Limits.MaxJunkCommands = 5);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        await c.CommandAsync("NOOP", 250);
        await c.CommandAsync("RSET", 250);
        await c.CommandAsync("VRFY alice", 252);
        await c.CommandAsync("HELP", 214);
        await c.CommandAsync("EXPN sales", 502);
        // Five junk commands: the limit. A message now starts the count again.
        await c.CommandAsync("MAIL FROM:<carol@remote.example>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        await c.CommandAsync("Subject: junk\r\n\r\nbody\r\n.", 250);
        for (var i = 0; i < 5; i++)
        {
            await c.CommandAsync("NOOP", 250);
        }
        Assert.StartsWith("421 4.7.0", await c.CommandAsync("NOOP"), StringComparison.Ordinal);
        Assert.True(await c.IsClosedAsync());
    }
}
