using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 12 item 2: 100 identical RCPT TO lines turned one message into 100 copies on disk and in
/// the mailbox. A recipient given again (RFC 5321 §3.3 lets a server keep one) is answered 250 and
/// stored once; addresses compare as the address book does (a local address without case, a
/// remote one with its domain without case).
/// </summary>
public sealed class DuplicateRecipientsAreStoredOnce
{
    [Fact]
    public async Task AHundredIdenticalRecipientsMakeOneCopy()
    {
        await using var server = await TestServer.StartAsync();
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        await c.CommandAsync("MAIL FROM:<carol@remote.example>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        for (var i = 0; i < 99; i++)
        {
            var reply = await c.CommandAsync(i % 2 == 0 ? "RCPT TO:<alice@example.test>" : "RCPT TO:<ALICE@Example.TEST>", 250);
            Assert.Contains("duplicate", reply, StringComparison.OrdinalIgnoreCase);
        }
        await c.CommandAsync("RCPT TO:<bob@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        await c.CommandAsync("Subject: dup\r\n\r\nbody\r\n.", 250);
        await c.CommandAsync("QUIT", 221);
        await server.WaitForDeliveryAsync("alice@example.test");
        await server.WaitForDeliveryAsync("bob@example.test");
        await server.WaitForLogAsync("event=accepted", "rcpts=2");
        // Once the queue is empty every copy the delivery would make has been made.
        await CrashSafety.FaultyStorageAcknowledgesNothing.WaitForEmptyQueueAsync(server);
        Assert.Single(server.Delivered("alice@example.test"));
        Assert.Single(server.Delivered("bob@example.test"));
    }

    [Fact]
    public async Task DuplicatesDoNotUseUpTheRecipientLimit()
    {
        await using var server = await TestServer.StartAsync(o => o.Limits.MaxRecipients = 2);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        await c.CommandAsync("MAIL FROM:<carol@remote.example>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("RCPT TO:<bob@example.test>", 250);
        await c.CommandAsync("RCPT TO:<alice.alias@example.test>", 452);
        await c.CommandAsync("QUIT", 221);
    }
}
