using System.Net.Sockets;
using System.Text;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Clients that reset the connection with replies unsent, or never read their replies, must not keep
/// a connection slot: otherwise a handful of them lock everyone out (421 at connect).
/// </summary>
public sealed class MisbehavingSockets
{
    private static async Task<string> GreetingAsync(int port)
    {
        await using var c = await RawSmtp.ConnectAsync(port);
        return await c.ReadReplyAsync();
    }

    [Fact]
    public async Task ResetWithRepliesPendingGivesTheSlotBack()
    {
        await using var server = await TestServer.StartAsync(o => o.Limits.MaxConnectionsPerIp = 2);
        for (var i = 0; i < 10; i++)
        {
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await s.ConnectAsync("127.0.0.1", server.MxPort);
            await s.SendAsync(Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("NOOP\r\n", 200))));
            s.LingerState = new LingerOption(true, 0); // close with RST
            s.Close();
        }
        var deadline = DateTime.UtcNow.AddSeconds(10);
        string greeting;
        while ((greeting = await GreetingAsync(server.MxPort)).StartsWith("421", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }
        Assert.StartsWith("220", greeting);
    }

    [Fact]
    public async Task ClientThatNeverReadsIsDroppedAfterTheTimeout()
    {
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Limits.MaxConnectionsPerIp = 1;
            o.Limits.CommandTimeout = TimeSpan.FromSeconds(1);
        });
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.ReceiveBufferSize = 4096;
        await s.ConnectAsync("127.0.0.1", server.MxPort);
        // EHLO replies are ~200 octets each; 4 MB of replies fill every buffer on the way.
        var flood = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("EHLO client.example\r\n", 1000)));
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(8));
        try
        {
            for (var i = 0; i < 20 && !cts.IsCancellationRequested; i++)
            {
                await s.SendAsync(flood, cts.Token);
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            // the server gave up on us: that is the point
        }
        var deadline = DateTime.UtcNow.AddSeconds(15);
        string greeting;
        while ((greeting = await GreetingAsync(server.MxPort)).StartsWith("421", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
        }
        // The unread replies time out and the session is dropped, giving the only slot back.
        Assert.True(greeting.StartsWith("220", StringComparison.Ordinal), $"{greeting}\n{server.Logs}");
    }
}
