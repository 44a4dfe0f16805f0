using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Cli;

/// <summary>
/// `postern queue flush|retry|hold|release|bounce|delete` with no server running (SPEC §1): the
/// command takes queue/server.lock and changes the files itself; what needs the server (a delivery,
/// a bounce message) happens when it next starts.
/// </summary>
public sealed class QueueActionsWhileTheServerIsStopped : IDisposable
{
    private readonly string _data = TestServer.NewDataDir();

    public void Dispose()
    {
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static JsonElement Reply(CliResult r)
    {
        Assert.True(r.ExitCode == 0, r.ToString());
        var reply = JsonDocument.Parse(r.Out).RootElement;
        Assert.Equal("stopped", reply.GetProperty("Server").GetString());
        return reply;
    }

    [Fact]
    public async Task HeldBeforeTheServerStartsAndDeliveredWhenReleasedWhileItRuns()
    {
        var id = QueueSeed.Message(_data, "someone@elsewhere.test", ["alice@example.test"]);
        using var cli = PosternCli.WithConfig(dataDirectory: _data);
        var hold = await cli.RunAsync("queue", "hold", id.Value);
        Assert.True(hold.ExitCode == 0, hold.ToString());
        Assert.Contains($"{id} is on hold: it is not delivered until `postern queue release {id}`", hold.Out, StringComparison.Ordinal);
        Assert.True(QueueSeed.IsHeld(_data, id));

        await using (var server = await SeededServer.StartAsync(_data))
        {
            await server.WaitForLogAsync("event=queue_recovered", "messages=1");
            await Task.Delay(300);
            Assert.Empty(QueueSeed.NewMail(_data, "alice@example.test"));

            var release = await cli.RunAsync("queue", "release", id.Value);
            Assert.True(release.ExitCode == 0, release.ToString());
            Assert.Contains("released and goes back to delivery now", release.Out, StringComparison.Ordinal);
            await QueueSeed.WaitForAsync(() => QueueSeed.NewMail(_data, "alice@example.test").Length == 1, "delivery once released");
        }
        Assert.False(QueueSeed.IsQueued(_data, id));
    }

    [Fact]
    public async Task ReleasedWhileStoppedIsDeliveredAtStart()
    {
        var id = QueueSeed.Message(_data, "someone@elsewhere.test", ["alice@example.test"], held: true);
        using var cli = PosternCli.WithConfig(dataDirectory: _data);
        var reply = Reply(await cli.RunAsync("queue", "release", id.Value, "--json"));
        Assert.Equal("released", reply.GetProperty("Result").GetString());
        Assert.Equal(id.Value, reply.GetProperty("Id").GetString());
        Assert.False(QueueSeed.IsHeld(_data, id));
        var twice = await cli.RunAsync("queue", "release", id.Value);
        Assert.True(twice.ExitCode == 0, twice.ToString());
        Assert.Contains("was not on hold", twice.Out, StringComparison.Ordinal);

        await using var server = await SeededServer.StartAsync(_data);
        await QueueSeed.WaitForAsync(() => QueueSeed.NewMail(_data, "alice@example.test").Length == 1, "delivery at start");
    }

    [Fact]
    public async Task RetryAndFlushMakeDeferredRecipientsDueSoTheServerTriesThemAtStart()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var later = time.GetUtcNow().AddHours(1);
        var first = QueueSeed.Message(_data, "alice@example.test", ["carol@peer.test"], state: QueueSeed.Deferred(1, later));
        var second = QueueSeed.Message(_data, "alice@example.test", ["dave@peer.test"], state: QueueSeed.Deferred(1, later));
        var untouched = QueueSeed.Message(_data, "alice@example.test", ["erin@peer.test"], state: QueueSeed.Deferred(1, later), held: true);
        using var cli = PosternCli.WithConfig(dataDirectory: _data);

        var retry = await cli.RunAsync("queue", "retry", first.Value);
        Assert.True(retry.ExitCode == 0, retry.ToString());
        Assert.Contains($"{first} will be tried as soon as the server starts (1 deferred recipient(s) made due)", retry.Out, StringComparison.Ordinal);
        Assert.Null(QueueSeed.State(_data, first)!.Recipients[0].NextAttempt);
        Assert.Equal(later, QueueSeed.State(_data, second)!.Recipients[0].NextAttempt);

        var flush = Reply(await cli.RunAsync("queue", "flush", "--json"));
        Assert.Equal(2, flush.GetProperty("Messages").GetInt32());
        Assert.Null(QueueSeed.State(_data, second)!.Recipients[0].NextAttempt);
        Assert.Equal(later, QueueSeed.State(_data, untouched)!.Recipients[0].NextAttempt); // on hold: left alone

        // The clock never moves: only what the commands made due is tried.
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?> { ["peer.test"] = QueueSeed.RefusingZone });
        await using var server = await SeededServer.StartAsync(_data, o =>
        {
            o.Dns.Servers = [dns.Server];
            o.Delivery.RemotePort = 9;
        }, time);
        await server.WaitForLogAsync("event=delivery", $"queue_id={first}", "status=deferred");
        await server.WaitForLogAsync("event=delivery", $"queue_id={second}", "status=deferred");
        await QueueSeed.WaitForAsync(() => QueueSeed.State(_data, first)!.Recipients[0].Attempts == 2 && QueueSeed.State(_data, second)!.Recipients[0].Attempts == 2, "the second attempts recorded");
        Assert.DoesNotContain($"event=delivery queue_id={untouched}", server.Logs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BounceIsRecordedAndTheServerSendsTheReportWhenItStarts()
    {
        var id = QueueSeed.Message(_data, "alice@example.test", ["carol@peer.test", "dave@peer.test"], state: QueueSeed.Deferred(2, DateTimeOffset.UtcNow.AddHours(1)));
        using var cli = PosternCli.WithConfig(dataDirectory: _data);
        var bounce = await cli.RunAsync("queue", "bounce", id.Value);
        Assert.True(bounce.ExitCode == 0, bounce.ToString());
        Assert.Contains($"2 recipient(s) of {id} marked as failed; the server is not running, so the bounce to <alice@example.test> is sent when it next starts", bounce.Out, StringComparison.Ordinal);
        var state = QueueSeed.State(_data, id)!;
        Assert.All(state.Recipients, r =>
        {
            Assert.Equal(RecipientStatus.Bounced, r.Status);
            Assert.Equal(QueueControl.BounceDetail, r.Detail);
            Assert.False(r.Notified);
        });
        Assert.Contains("the bounce goes to <alice@example.test> when the server next takes the message", (await cli.RunAsync("queue", "show", id.Value)).Out, StringComparison.Ordinal);
        var again = await cli.RunAsync("queue", "bounce", id.Value);
        Assert.True(again.ExitCode == 1, again.ToString());
        Assert.Contains("already delivered or bounced", again.Err, StringComparison.Ordinal);

        await using var server = await SeededServer.StartAsync(_data);
        await QueueSeed.WaitForAsync(() => QueueSeed.NewMail(_data, "alice@example.test").Length == 1, "the bounce in alice's Maildir");
        var dsn = MimeKit.MimeMessage.Load(QueueSeed.NewMail(_data, "alice@example.test")[0]);
        Assert.Equal("Undelivered Mail Returned to Sender", dsn.Subject);
        Assert.Contains("<dave@peer.test>: " + QueueControl.BounceDetail, dsn.TextBody, StringComparison.Ordinal);
        await server.WaitForLogAsync("event=removed", $"queue_id={id}");
        Assert.False(QueueSeed.IsQueued(_data, id));
    }

    [Fact]
    public async Task DeleteRemovesTheMessageItsStateAndItsHold()
    {
        var id = QueueSeed.Message(_data, "alice@example.test", ["carol@peer.test"], state: QueueSeed.Deferred(1, DateTimeOffset.UtcNow.AddHours(1)), held: true);
        using var cli = PosternCli.WithConfig(dataDirectory: _data);
        var reply = Reply(await cli.RunAsync("queue", "delete", id.Value, "--json"));
        Assert.Equal("deleted", reply.GetProperty("Result").GetString());
        Assert.Equal("delete", reply.GetProperty("Action").GetString());
        Assert.False(QueueSeed.IsQueued(_data, id));
        Assert.Null(QueueSeed.State(_data, id));
        Assert.False(QueueSeed.IsHeld(_data, id));
        Assert.Equal("queue is empty", (await cli.RunAsync("queue", "list")).Out.Trim());
    }

    [Theory]
    [InlineData("retry")]
    [InlineData("hold")]
    [InlineData("release")]
    [InlineData("bounce")]
    [InlineData("delete")]
    public async Task AnUnknownIdIsAProblem(string action)
    {
        using var cli = PosternCli.WithConfig(dataDirectory: _data);
        var id = QueueId.New(DateTimeOffset.UtcNow).Value;
        var r = await cli.RunAsync("queue", action, id, "--json");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Equal("not_found", JsonDocument.Parse(r.Out).RootElement.GetProperty("Result").GetString());
        Assert.Contains($"no message {id} in the queue", r.Err, StringComparison.Ordinal);
    }

    /// <summary>A server lock taken by something that never answers: the request is withdrawn, nothing changes.</summary>
    [Fact]
    public void ARequestNoServerTakesIsWithdrawn()
    {
        var control = new QueueControl(Path.Combine(_data, "queue"));
        var name = control.Submit(new ControlRequest { Action = "flush", Requested = DateTimeOffset.UtcNow });
        Assert.Null(control.WaitForReply(name, TimeSpan.FromMilliseconds(200)));
        Assert.Empty(Directory.GetFiles(control.ControlDir));
    }
}
