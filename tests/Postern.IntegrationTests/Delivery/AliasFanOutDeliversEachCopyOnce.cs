using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Delivery;

/// <summary>
/// Issue 12 (item 9): an alias to several local accounts (sales@ → alice, bob). When bob's Maildir
/// cannot be written, alice's copy is already there; the retry, once bob's Maildir is fixed, must
/// deliver bob's copy only: each account's delivery is recorded on its own.
/// </summary>
public sealed class AliasFanOutDeliversEachCopyOnce
{
    [Fact]
    public async Task TheRetryDeliversOnlyTheCopyThatFailed()
    {
        await using var server = await TestServer.StartAsync();
        var domain = Path.Combine(server.DataDir, "mail", "example.test");
        Directory.CreateDirectory(domain);
        // A file where bob's Maildir goes: his delivery fails (and root ignores permissions, so not a chmod).
        var blocker = Path.Combine(domain, "bob");
        await File.WriteAllTextAsync(blocker, "in the way of bob's Maildir");
        await using (var c = await RawSmtp.OpenAsync(server.MxPort, ehlo: "client.sender.test"))
        {
            await c.CommandAsync("MAIL FROM:<someone@sender.test>", 250);
            await c.CommandAsync("RCPT TO:<sales@example.test>", 250);
            await c.CommandAsync("DATA", 354);
            await c.CommandAsync("From: someone@sender.test\r\nTo: sales@example.test\r\nSubject: fan-out\r\nMessage-ID: <fan-out@sender.test>\r\n\r\nonce each\r\n.", 250);
        }
        var deferred = await server.WaitForLogAsync("event=delivery", "status=deferred");
        var id = deferred[(deferred.IndexOf("queue_id=", StringComparison.Ordinal) + 9)..].Split(' ')[0];
        Assert.Single(server.Delivered("alice@example.test"));

        File.Delete(blocker);
        var retry = await server.Server.Runner.ApplyAsync(new Postern.Server.Queue.ControlRequest { Action = "retry", Id = id, Requested = DateTimeOffset.UtcNow }, CancellationToken.None);
        Assert.True(retry.Ok, retry.Detail);
        await server.WaitForDeliveryAsync("bob@example.test");
        await server.WaitForLogAsync("event=removed", $"queue_id={id}");
        Assert.Single(server.Delivered("bob@example.test"));
        Assert.Single(server.Delivered("alice@example.test"));
    }
}
