using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.CrashSafety;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Accounts;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Cli;

/// <summary>
/// `postern queue flush|retry|hold|release|bounce|delete` while a server runs (SPEC §1): the command
/// finds queue/server.lock taken and hands the request to the server, which applies it, logs it
/// (event=queue_control) and answers. The clock is fake and never advanced: whatever happens, the
/// command made it happen.
/// </summary>
public sealed class QueueActionsWhileTheServerRuns
{
    /// <summary>A server whose remote deliveries all defer at once, with the messages given already queued (tried once before; the next attempt an hour away on a clock that does not move).</summary>
    private sealed class Running : IAsyncDisposable
    {
        private DnsServer _dns = null!;
        public TestServer Server { get; private set; } = null!;
        public QueueId[] Ids { get; private set; } = [];

        public static async Task<Running> StartAsync(params (string From, string To, bool Held)[] messages)
        {
            var r = new Running { _dns = await DnsServer.StartAsync(new Dictionary<string, string?> { ["peer.test"] = QueueSeed.RefusingZone }) };
            var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
            r.Ids = new QueueId[messages.Length];
            r.Server = await TestServer.StartAsync(o =>
            {
                o.Dns.Servers = [r._dns.Server];
                o.Delivery.RemotePort = 9; // refused: an attempt defers at once
                for (var i = 0; i < messages.Length; i++)
                {
                    r.Ids[i] = QueueSeed.Message(o.DataDirectory, messages[i].From, [messages[i].To], state: QueueSeed.Deferred(1, time.GetUtcNow().AddHours(1)), held: messages[i].Held);
                }
            }, time: time);
            return r;
        }

        public async ValueTask DisposeAsync()
        {
            await Server.DisposeAsync();
            _dns.Dispose();
        }
    }

    private static int Attempts(TestServer server, QueueId id) => QueueSeed.State(server.DataDir, id)?.Recipients[0].Attempts ?? 0;

    [Fact]
    public async Task RetryTriesADeferredMessageAtOnce()
    {
        await using var running = await Running.StartAsync(("alice@example.test", "carol@peer.test", false));
        var (server, ids) = (running.Server, running.Ids);
        using var cli = PosternCli.WithConfig(dataDirectory: server.DataDir);
        var id = ids[0];

        var r = await cli.RunAsync("queue", "retry", id.Value);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains($"{id} is being tried now (1 deferred recipient(s) made due)", r.Out, StringComparison.Ordinal);
        await server.WaitForLogAsync("event=queue_control", $"queue_id={id}", "action=retry", "result=retrying");
        await server.WaitForLogAsync("event=delivery", $"queue_id={id}", "status=deferred");
        await QueueSeed.WaitForAsync(() => Attempts(server, id) == 2, "a second attempt");

        var json = await cli.RunAsync("queue", "retry", id.Value, "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        var reply = JsonDocument.Parse(json.Out).RootElement;
        Assert.Equal(id.Value, reply.GetProperty("Id").GetString());
        Assert.Equal("retry", reply.GetProperty("Action").GetString());
        Assert.Equal("retrying", reply.GetProperty("Result").GetString());
        Assert.Equal("running", reply.GetProperty("Server").GetString());
        await QueueSeed.WaitForAsync(() => Attempts(server, id) == 3, "a third attempt");
    }

    [Fact]
    public async Task FlushTriesEveryMessageButTheHeldOnes()
    {
        await using var running = await Running.StartAsync(("alice@example.test", "carol@peer.test", false), ("bob@example.test", "dave@peer.test", false), ("alice@example.test", "erin@peer.test", true));
        var (server, ids) = (running.Server, running.Ids);
        using var cli = PosternCli.WithConfig(dataDirectory: server.DataDir);

        var r = await cli.RunAsync("queue", "flush", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var reply = JsonDocument.Parse(r.Out).RootElement;
        Assert.Equal("retrying", reply.GetProperty("Result").GetString());
        Assert.Equal(2, reply.GetProperty("Messages").GetInt32());
        Assert.Contains("1 on hold left alone", reply.GetProperty("Detail").GetString(), StringComparison.Ordinal);
        await QueueSeed.WaitForAsync(() => Attempts(server, ids[0]) == 2 && Attempts(server, ids[1]) == 2, "a second attempt of both");
        await server.WaitForLogAsync("event=queue_control", $"queue_id={ids[1]}", "action=flush", "result=retrying");
        Assert.Equal(1, Attempts(server, ids[2]));
        Assert.DoesNotContain(server.LogLines, l => l.Contains("event=delivery", StringComparison.Ordinal) && l.Contains(ids[2].Value, StringComparison.Ordinal));
    }

    [Fact]
    public async Task AHeldMessageIsLeftAloneUntilReleased()
    {
        await using var running = await Running.StartAsync(("alice@example.test", "carol@peer.test", false));
        var (server, ids) = (running.Server, running.Ids);
        using var cli = PosternCli.WithConfig(dataDirectory: server.DataDir);
        var id = ids[0];

        var hold = await cli.RunAsync("queue", "hold", id.Value);
        Assert.True(hold.ExitCode == 0, hold.ToString());
        Assert.Contains($"{id} is on hold", hold.Out, StringComparison.Ordinal);
        Assert.True(QueueSeed.IsHeld(server.DataDir, id));
        await server.WaitForLogAsync("event=queue_control", $"queue_id={id}", "action=hold", "result=held");
        Assert.Contains("already on hold", (await cli.RunAsync("queue", "hold", id.Value)).Out, StringComparison.Ordinal);

        // Held: a retry is refused, and list and show say why.
        var retry = await cli.RunAsync("queue", "retry", id.Value);
        Assert.True(retry.ExitCode == 1, retry.ToString());
        Assert.Contains($"postern queue release {id}", retry.Err, StringComparison.Ordinal);
        Assert.Contains($"{id}  held", (await cli.RunAsync("queue", "list")).Out, StringComparison.Ordinal);
        Assert.Contains("no next attempt while the message is on hold", (await cli.RunAsync("queue", "show", id.Value)).Out, StringComparison.Ordinal);
        Assert.Equal(1, Attempts(server, id));

        var release = await cli.RunAsync("queue", "release", id.Value, "--json");
        Assert.True(release.ExitCode == 0, release.ToString());
        Assert.Equal("released", JsonDocument.Parse(release.Out).RootElement.GetProperty("Result").GetString());
        Assert.False(QueueSeed.IsHeld(server.DataDir, id));
        Assert.Equal(0, (await cli.RunAsync("queue", "retry", id.Value)).ExitCode);
        await QueueSeed.WaitForAsync(() => Attempts(server, id) == 2, "an attempt once released");
    }

    [Fact]
    public async Task BounceSendsTheSenderADeliveryStatusNotificationAndTheMessageLeaves()
    {
        // The second message is on hold: a bounce goes through a hold.
        await using var running = await Running.StartAsync(("alice@example.test", "carol@peer.test", false), ("alice@example.test", "dave@peer.test", true));
        var (server, ids) = (running.Server, running.Ids);
        using var cli = PosternCli.WithConfig(dataDirectory: server.DataDir);

        var r = await cli.RunAsync("queue", "bounce", ids[0].Value);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains($"1 recipient(s) of {ids[0]} bounced; the bounce to <alice@example.test> is queued as ", r.Out, StringComparison.Ordinal);
        var dsn = MimeKit.MimeMessage.Load(new MemoryStream((await server.WaitForDeliveryAsync("alice@example.test"))[0]));
        Assert.Equal("Undelivered Mail Returned to Sender", dsn.Subject);
        var status = Assert.Single(Assert.IsType<MimeKit.MultipartReport>(dsn.Body).OfType<MimeKit.MessageDeliveryStatus>());
        Assert.Equal("rfc822; carol@peer.test", status.StatusGroups[1]["Final-Recipient"]);
        Assert.Equal("5.0.0", status.StatusGroups[1]["Status"]);
        Assert.Contains(QueueControl.BounceDetail, dsn.TextBody, StringComparison.Ordinal);
        await server.WaitForLogAsync("event=delivery", $"queue_id={ids[0]}", "transport=admin", "status=bounced");
        await server.WaitForLogAsync("event=queue_control", $"queue_id={ids[0]}", "action=bounce", "result=bounced");
        await server.WaitForLogAsync("event=removed", $"queue_id={ids[0]}");
        Assert.False(QueueSeed.IsQueued(server.DataDir, ids[0]));

        var held = await cli.RunAsync("queue", "bounce", ids[1].Value, "--json");
        Assert.True(held.ExitCode == 0, held.ToString());
        Assert.Equal("bounced", JsonDocument.Parse(held.Out).RootElement.GetProperty("Result").GetString());
        await server.WaitForDeliveryAsync("alice@example.test", 2);
        await QueueSeed.WaitForAsync(() => !QueueSeed.IsQueued(server.DataDir, ids[1]) && !QueueSeed.IsHeld(server.DataDir, ids[1]), "the held message and its marker gone");

        var again = await cli.RunAsync("queue", "bounce", ids[1].Value);
        Assert.True(again.ExitCode == 1, again.ToString());
        Assert.Contains($"no message {ids[1]} in the queue", again.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DeleteRemovesTheMessageItsStateAndItsHold()
    {
        await using var running = await Running.StartAsync(("alice@example.test", "carol@peer.test", true));
        var (server, ids) = (running.Server, running.Ids);
        using var cli = PosternCli.WithConfig(dataDirectory: server.DataDir);
        var id = ids[0];

        var r = await cli.RunAsync("queue", "delete", id.Value, "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var reply = JsonDocument.Parse(r.Out).RootElement;
        Assert.Equal("deleted", reply.GetProperty("Result").GetString());
        Assert.Equal("running", reply.GetProperty("Server").GetString());
        Assert.False(QueueSeed.IsQueued(server.DataDir, id));
        Assert.False(QueueSeed.IsHeld(server.DataDir, id));
        Assert.Null(QueueSeed.State(server.DataDir, id));
        await server.WaitForLogAsync("event=queue_control", $"queue_id={id}", "action=delete", "result=deleted");
        Assert.Empty(QueueSeed.NewMail(server.DataDir, "alice@example.test")); // deleted, not bounced
    }

    /// <summary>The real `postern serve` in a process of its own: the lock and the request files work across processes.</summary>
    [Fact]
    public async Task ARealServerProcessDeliversAHeldMessageOnceReleased()
    {
        var root = TestServer.NewDataDir();
        var data = Path.Combine(root, "data");
        Directory.CreateDirectory(data);
        try
        {
            await File.WriteAllTextAsync(Path.Combine(data, "passwd"), $"alice@example.test:{PasswordHasher.Hash(TestServer.AlicePassword)}\n");
            var id = QueueSeed.Message(data, "someone@elsewhere.test", ["alice@example.test"], held: true);
            using var server = await PosternProcess.StartAsync(data, TimeSpan.FromSeconds(30));
            using var cli = PosternCli.WithConfig(dataDirectory: data);

            var list = await cli.RunAsync("queue", "list", "--json");
            Assert.Equal("held", JsonDocument.Parse(list.Out).RootElement[0].GetProperty("State").GetString());
            await Task.Delay(300);
            Assert.Empty(QueueSeed.NewMail(data, "alice@example.test"));

            var release = await cli.RunAsync("queue", "release", id.Value, "--json");
            Assert.True(release.ExitCode == 0, release + "\n" + server.Output);
            var reply = JsonDocument.Parse(release.Out).RootElement;
            Assert.Equal("released", reply.GetProperty("Result").GetString());
            Assert.Equal("running", reply.GetProperty("Server").GetString());
            await QueueSeed.WaitForAsync(() => QueueSeed.NewMail(data, "alice@example.test").Length == 1, "delivery once released\n" + server.Output);
            Assert.Contains("Subject: seeded", Encoding.UTF8.GetString(File.ReadAllBytes(QueueSeed.NewMail(data, "alice@example.test")[0])), StringComparison.Ordinal);
            await QueueSeed.WaitForAsync(() => server.Output.Contains($"event=queue_control queue_id={id} action=release result=released", StringComparison.Ordinal), "the server's log line\n" + server.Output);
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
