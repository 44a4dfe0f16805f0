using Postern.IntegrationTests.Cli;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Accounts;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.CrashSafety;

/// <summary>
/// A state file cut short (a file system that lost the end of it in a crash, a full disk under a
/// tool that copied the queue) must never read as "nothing happened yet": that would deliver again
/// to every recipient already delivered. The real server writes the state (alice delivered, dave
/// deferred), is killed, the state file is truncated, and the restarted server must move it to
/// queue/corrupt/, hold the message (neither delivered again nor lost), log it, and `postern queue`
/// must say so.
/// </summary>
public sealed class TruncatedStateFileIsHeldNotRedelivered
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private static readonly string DeadZone = DnsServer.Zone("dead.test", """
        @        IN MX 10 mx.dead.test.
        mx       IN A   127.0.0.62
        """);

    [Fact]
    public async Task TheMessageIsHeldAndTheStateMovedToCorrupt()
    {
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?> { ["dead.test"] = DeadZone });
        var root = Path.Combine(Path.GetTempPath(), "postern-crash-tests", Guid.NewGuid().ToString("N")[..12]);
        var data = Path.Combine(root, "data");
        Directory.CreateDirectory(data);
        await File.WriteAllTextAsync(Path.Combine(data, "passwd"), $"alice@example.test:{PasswordHasher.Hash("unused-password")}\n");
        var settings = new Dictionary<string, object>
        {
            ["Dns"] = new { Servers = new[] { dns.Server } },
            // Nothing listens there: dave is deferred, so the message stays queued with a state file.
            ["Delivery"] = new { RemotePort = Ports.Free(System.Net.IPAddress.Parse("127.0.0.62")) },
        };
        try
        {
            await Spooled.IntoAsync(data, 1, _ => (new Envelope
            {
                From = "app@origin.test",
                Recipients = [new EnvelopeRecipient { Address = "alice@example.test", Local = true }, new EnvelopeRecipient { Address = "dave@dead.test" }],
            }, "From: app@origin.test\r\nSubject: once\r\nMessage-ID: <once@origin.test>\r\n\r\nonly once\r\n"));
            var queue = Path.Combine(data, "queue");
            QueueId id;
            await using (var spool = new Spool(queue))
            {
                id = spool.ListIds().Single();
            }
            var inbox = Path.Combine(data, "mail", "example.test", "alice", "new");
            var statePath = Path.Combine(queue, "state", id.Value);
            using (var server = await PosternProcess.StartAsync(data, StartTimeout, settings))
            {
                await server.WaitForLineAsync("event=delivery", "to=dave@dead.test", "status=deferred");
                await WaitForAsync(() => File.Exists(statePath), server);
                server.KillHard();
            }
            Assert.Single(Directory.GetFiles(inbox));
            var whole = await File.ReadAllBytesAsync(statePath);
            await File.WriteAllBytesAsync(statePath, whole[..(whole.Length / 2)]);

            using (var server = await PosternProcess.StartAsync(data, StartTimeout, settings))
            {
                var line = await server.WaitForLineAsync("event=queue_state_corrupt", $"queue_id={id}");
                Assert.Contains("held", line, StringComparison.Ordinal);
                // Moved aside, never deleted; the message itself stays, on hold.
                var moved = Directory.GetFiles(Path.Combine(queue, "corrupt"), id.Value + ".state*");
                Assert.Single(moved);
                Assert.Equal(whole[..(whole.Length / 2)], await File.ReadAllBytesAsync(moved[0]));
                Assert.True(File.Exists(Path.Combine(queue, "messages", id.Value)), "the message must stay queued");
                Assert.True(File.Exists(Path.Combine(queue, "hold", id.Value)), "the message must be on hold");
                Assert.False(File.Exists(statePath), "the unreadable state must not stay where it is read");
                // A pass over the queue later (a flush) must not deliver it either.
                var flush = await PosternCli.RunRawAsync("", "queue", "flush", "--config", server.ConfigPath);
                Assert.Equal(0, flush.ExitCode);
                await Task.Delay(1000);
                Assert.Single(Directory.GetFiles(inbox));

                var show = await PosternCli.RunRawAsync("", "queue", "show", id.Value, "--config", server.ConfigPath);
                Assert.Equal(0, show.ExitCode);
                Assert.Contains("held", show.Out, StringComparison.Ordinal);
                Assert.Contains("corrupt", show.Out, StringComparison.Ordinal);
                var list = await PosternCli.RunRawAsync("", "queue", "list", "--config", server.ConfigPath);
                Assert.Contains(id.Value, list.Out, StringComparison.Ordinal);
                Assert.Contains("held", list.Out, StringComparison.Ordinal);
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static async Task WaitForAsync(Func<bool> condition, PosternProcess server)
    {
        var deadline = Environment.TickCount64 + 30_000;
        while (!condition())
        {
            Assert.False(server.HasExited, $"postern exited:\n{server.Output}");
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException($"condition not met in 30 s. Server output:\n{server.Output}");
            }
            await Task.Delay(10);
        }
    }
}
