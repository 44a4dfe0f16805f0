using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Smtp;

/// <summary>SPEC §6: at start-up everything on disk is delivered; unreadable spool files are moved aside, never deleted.</summary>
public sealed class QueueRecovery
{
    [Fact]
    public async Task SpooledMessagesAreDeliveredAtStartAndCorruptOnesMovedAside()
    {
        var dir = TestServer.NewDataDir();
        var queue = Path.Combine(dir, "queue");
        var id = QueueId.New(DateTimeOffset.UtcNow);
        await using (var spool = new Spool(queue))
        {
            using var w = spool.Create(new Envelope
            {
                Id = id.Value,
                Received = DateTimeOffset.UtcNow,
                From = "a@remote.example",
                Recipients = [new EnvelopeRecipient { Address = "alice@example.test", Local = true }],
            });
            w.WriteText("Subject: left behind\r\n\r\nrecover me\r\n");
            await w.CommitAsync();
        }
        var bad = QueueId.New(DateTimeOffset.UtcNow);
        File.WriteAllText(Path.Combine(queue, "messages", bad.Value), "this is not a spool file");
        File.WriteAllText(Path.Combine(queue, "tmp", "never-acknowledged"), "partial");
        // Well-formed JSON, but no recipients list: unreadable as an envelope, so corrupt (it once killed a delivery worker).
        var hollow = QueueId.New(DateTimeOffset.UtcNow);
        File.WriteAllText(Path.Combine(queue, "messages", hollow.Value), $"POSTERN1 {{\"Id\":\"{hollow.Value}\",\"Recipients\":null}}\nSubject: x\r\n\r\n");

        var options = TestServer.DefaultOptions(dir);
        File.WriteAllText(Path.Combine(dir, "passwd"), $"alice@example.test:{Postern.Server.Accounts.PasswordHasher.Hash("x-password")}\n");
        using var logs = new Postern.Server.Logging.KeyValueLoggerProvider(TextWriter.Null);
        await using var server = new Postern.Server.PosternServer(options, logs.CreateLogger("t"));
        server.Start();

        var deadline = DateTime.UtcNow.AddSeconds(10);
        var newDir = Path.Combine(dir, "mail", "example.test", "alice", "new");
        // Delivered, then removed from the queue a moment later: wait for both, and for the corrupt file to move.
        while ((!Directory.Exists(newDir) || Directory.GetFiles(newDir).Length == 0 || File.Exists(Path.Combine(queue, "messages", id.Value))
                || File.Exists(Path.Combine(queue, "messages", bad.Value))) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
        var delivered = Directory.GetFiles(newDir);
        Assert.Single(delivered);
        Assert.Contains("recover me", Encoding.UTF8.GetString(File.ReadAllBytes(delivered[0])));
        Assert.False(File.Exists(Path.Combine(queue, "messages", id.Value)));
        Assert.Equal("this is not a spool file", File.ReadAllText(Path.Combine(queue, "corrupt", bad.Value)));
        deadline = DateTime.UtcNow.AddSeconds(10);
        while (!File.Exists(Path.Combine(queue, "corrupt", hollow.Value)) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
        Assert.True(File.Exists(Path.Combine(queue, "corrupt", hollow.Value)));
        Assert.Empty(Directory.GetFiles(Path.Combine(queue, "tmp")));
    }
}
