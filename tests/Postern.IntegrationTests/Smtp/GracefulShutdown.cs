using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>Issue 2: on SIGTERM the transaction in flight finishes; idle and new transactions get 421 4.3.2.</summary>
public sealed class GracefulShutdown
{
    [Fact]
    public async Task IdleSessionIsToldAndTransactionInFlightFinishes()
    {
        var server = await TestServer.StartAsync();
        try
        {
            await using var idle = await RawSmtp.OpenAsync(server.MxPort);
            await using var busy = await RawSmtp.OpenAsync(server.MxPort);
            await busy.CommandAsync("MAIL FROM:<a@remote.example>", 250);
            await busy.CommandAsync("RCPT TO:<alice@example.test>", 250);
            await busy.CommandAsync("DATA", 354);
            await busy.SendAsync("Subject: in flight\r\n\r\nstarted before the stop\r\n");

            var stopping = server.Server.StopAsync("test");

            Assert.StartsWith("421 4.3.2", await idle.ReadReplyAsync());
            Assert.True(await idle.IsClosedAsync());
            // The transaction in flight is finished and acknowledged...
            await busy.SendAsync(".\r\n");
            Assert.StartsWith("250 2.0.0 OK queued as", await busy.ReadReplyAsync());
            // ...and then the session is closed too, as is any new transaction.
            Assert.StartsWith("421 4.3.2", await busy.ReadReplyAsync());
            await stopping;
            var files = Directory.GetFiles(Path.Combine(server.DataDir, "queue", "messages"));
            var delivered = server.Delivered("alice@example.test");
            Assert.Equal(1, files.Length + delivered.Length);
            // (Connecting again proves nothing here: another test's server may get the freed port.)
            await server.WaitForLogAsync("event=stopped", "sessions_left=0");
        }
        finally
        {
            await server.DisposeAsync();
        }
    }
}
