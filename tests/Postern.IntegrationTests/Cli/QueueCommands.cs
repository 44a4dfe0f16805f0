using System.Text.Json;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Cli;

/// <summary>`postern queue` on the spool, whether or not the server runs (SPEC §1, §6): the command line itself, and one message's life while the server runs.</summary>
public sealed class QueueCommands
{
    [Fact]
    public async Task AnEmptyQueueListsAsEmpty()
    {
        using var cli = PosternCli.WithConfig();
        var r = await cli.RunAsync("queue", "list");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal("queue is empty", r.Out.Trim());

        var json = await cli.RunAsync("queue", "list", "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        Assert.Equal(0, JsonDocument.Parse(json.Out).RootElement.GetArrayLength());
    }

    [Theory]
    [InlineData("show")]
    [InlineData("delete")]
    public async Task AnUnknownIdIsAProblem(string action)
    {
        using var cli = PosternCli.WithConfig();
        var id = QueueId.New(DateTimeOffset.UtcNow).Value;
        var r = await cli.RunAsync("queue", action, id);
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains(id, r.Err, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("show", "abc")]
    [InlineData("show", "0123456789ab")]
    [InlineData("delete", "0123456789ABC")]
    [InlineData("delete", "../../etc/pa")]
    [InlineData("show", "..%2Fpasswd0")]
    [InlineData("bounce", "abc")]
    [InlineData("hold", "../hold/0123")]
    public async Task AMalformedIdIsAUsageError(string action, string id)
    {
        using var cli = PosternCli.WithConfig();
        var r = await cli.RunAsync("queue", action, id);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("is not a queue id", r.Err, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("queue", "show")]
    [InlineData("queue", "purge")]
    [InlineData("queue", "retry")]
    [InlineData("queue", "release")]
    [InlineData("queue", "flush", "0123456789AB")]
    [InlineData("queue", "summary", "peer.test")]
    [InlineData("queue", "hold", "0123456789AB", "0123456789AC")]
    [InlineData("queue", "bounce", "0123456789AB", "--force")]
    public async Task AMalformedCommandIsAUsageError(params string[] args)
    {
        using var cli = PosternCli.WithConfig();
        var r = await cli.RunAsync(args);
        Assert.True(r.ExitCode == 2, r.ToString());
    }

    [Fact]
    public async Task AQueuedMessageIsListedExplainedAndDeletedWhileTheServerRuns()
    {
        await using var server = await TestServer.StartAsync();
        using var cli = PosternCli.WithConfig(dataDirectory: server.DataDir);

        // A message for a remote recipient stays queued: it is what `queue` is for.
        await using var c = await RawSmtp.OpenAsync(server.SubmissionPort);
        await c.StartTlsAsync();
        await c.CommandAsync("EHLO x", 250);
        Assert.StartsWith("235", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword), StringComparison.Ordinal);
        await c.CommandAsync("MAIL FROM:<alice@example.test>", 250);
        await c.CommandAsync("RCPT TO:<someone@remote.example>", 250);
        await c.CommandAsync("DATA", 354);
        var queued = await c.CommandAsync("Subject: queued\r\n\r\nhello\r\n.", 250);
        var id = queued.Split(' ')[^1];
        Assert.True(QueueId.IsValid(id), queued);

        var list = await cli.RunAsync("queue", "list");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains(id, list.Out, StringComparison.Ordinal);
        Assert.Contains("<alice@example.test> -> <someone@remote.example>", list.Out, StringComparison.Ordinal);

        var show = await cli.RunAsync("queue", "show", id);
        Assert.True(show.ExitCode == 0, show.ToString());
        Assert.Contains($"Queue id:  {id}", show.Out, StringComparison.Ordinal);
        Assert.Contains("<someone@remote.example>", show.Out, StringComparison.Ordinal);
        Assert.Contains("remote recipient", show.Out, StringComparison.Ordinal);

        var json = await cli.RunAsync("queue", "list", "--json");
        Assert.Equal(id, JsonDocument.Parse(json.Out).RootElement[0].GetProperty("Id").GetString());

        var delete = await cli.RunAsync("queue", "delete", id);
        Assert.True(delete.ExitCode == 0, delete.ToString());
        Assert.Equal($"{id} is deleted", delete.Out.Trim());
        Assert.Equal("queue is empty", (await cli.RunAsync("queue", "list")).Out.Trim());
        Assert.Equal(1, (await cli.RunAsync("queue", "show", id)).ExitCode);
    }
}
