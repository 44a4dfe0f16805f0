using System.Text;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.MailAuth;

/// <summary>
/// Issue 12 (item 9): the Authentication-Results field is only known at the end of the data and
/// is written into the envelope in the room (4 KiB) left for it. A message with many DKIM
/// signatures makes it longer than that room; the envelope must be written all the same (another
/// way), so that a DMARC quarantine still lands in Junk, never silently in the inbox. The first
/// attempt uses the envelope the session holds in memory; what counts is the one in the spool
/// file, which every later attempt (a retry, a restart) reads: so the first attempt is made to fail
/// (a file where the Junk folder goes) and the retry reads the message back from the spool.
/// </summary>
public sealed class LongAuthenticationResultsKeepTheQuarantine
{
    [Fact]
    public async Task AQuarantinedMessageWithFiftySignaturesLandsInJunk()
    {
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            ["careful.test"] = DnsServer.Zone("careful.test", """
                @       IN TXT "v=spf1 ip4:192.0.2.1 -all"
                _dmarc  IN TXT "v=DMARC1; p=quarantine"
                """),
            ["sender.test"] = DnsServer.Zone("sender.test", """
                @       IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
                """),
        });
        await using var server = await TestServer.StartAsync(o =>
        {
            o.MailAuth.Enabled = true;
            o.MailAuth.EnforceDmarc = true;
            o.Dns.Servers = [dns.Server];
        });
        var mailbox = Path.Combine(server.DataDir, "mail", "example.test", "alice");
        Directory.CreateDirectory(mailbox);
        var blocker = Path.Combine(mailbox, ".Junk");
        await File.WriteAllTextAsync(blocker, "in the way of the Junk folder");
        var message = new StringBuilder();
        for (var i = 0; i < 50; i++)
        {
            // Signatures that verify to nothing (no key published): each adds a result to the field.
            message.Append($"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=signer-number-{i}-of-a-long-chain.careful.test; s=selector{i}; h=from:to:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA{i}BBBBCCCCDDDD\r\n");
        }
        message.Append("From: news@careful.test\r\nTo: alice@example.test\r\nSubject: quarantined with many signatures\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <many-signatures@test>\r\n\r\nhello\r\n");
        await using (var c = await RawSmtp.OpenAsync(server.MxPort, ehlo: "client.sender.test"))
        {
            await c.CommandAsync("MAIL FROM:<bounce@sender.test>", 250);
            await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
            await c.CommandAsync("DATA", 354);
            var reply = await c.CommandAsync(message + ".");
            Assert.StartsWith("250", reply);
        }
        var deferred = await server.WaitForLogAsync("event=delivery", "to=alice@example.test", "status=deferred");
        var id = deferred[(deferred.IndexOf("queue_id=", StringComparison.Ordinal) + 9)..].Split(' ')[0];
        File.Delete(blocker);
        var retry = await server.Server.Runner.ApplyAsync(new Postern.Server.Queue.ControlRequest { Action = "retry", Id = id, Requested = DateTimeOffset.UtcNow }, CancellationToken.None);
        Assert.True(retry.Ok, retry.Detail);
        var deadline = Environment.TickCount64 + 10_000;
        while (server.Delivered("alice@example.test", "Junk").Length == 0 && server.Delivered("alice@example.test").Length == 0 && Environment.TickCount64 < deadline)
        {
            await Task.Delay(20);
        }
        Assert.Empty(server.Delivered("alice@example.test"));
        var junk = Assert.Single(server.Delivered("alice@example.test", "Junk"));
        var delivered = File.ReadAllText(junk);
        var field = delivered[delivered.IndexOf("Authentication-Results: mx.example.test", StringComparison.Ordinal)..];
        field = field[..field.IndexOf("\r\nDKIM-Signature", StringComparison.Ordinal)];
        Assert.True(field.Length > 4096, $"the field is {field.Length} octets: the test must exceed the 4 KiB room");
        Assert.Contains("dmarc=fail", field, StringComparison.Ordinal);
    }
}
