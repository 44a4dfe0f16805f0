using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 12 item 7: a bare LF (or CR) in a command line was answered 500 and the bytes after it ran
/// as the next command. Now it is refused with 554 5.5.2 and the connection is closed, so nothing
/// after the bare line ending is ever executed (the command-line form of SMTP smuggling).
/// </summary>
public sealed class BareLineEndingInACommandCloses
{
    [Theory]
    [InlineData("EHLO client.example\nMAIL FROM:<smuggled@remote.example>\r\n")]
    [InlineData("NO\rOP\r\nMAIL FROM:<smuggled@remote.example>\r\n")]
    [InlineData("NOOP\r\rMAIL FROM:<smuggled@remote.example>\r\n")]
    public async Task IsRefusedWith554AndNothingAfterItRuns(string bytes)
    {
        await using var server = await TestServer.StartAsync();
        await using var c = await RawSmtp.OpenAsync(server.MxPort, ehlo: null);
        await c.SendAsync(bytes);
        var reply = await c.ReadReplyAsync();
        Assert.StartsWith("554 5.5.2", reply, StringComparison.Ordinal);
        Assert.True(await c.IsClosedAsync(), "the connection stayed open after a bare line ending in a command");
        await server.WaitForLogAsync("event=rejected", "reason=bare_line_ending");
        await server.WaitForLogAsync("event=disconnect");
        Assert.DoesNotContain("smuggled@remote.example", server.Logs, StringComparison.Ordinal);
    }
}
