using System.Text;
using Postern.IntegrationTests.CrashSafety;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 12 item 7: with mail authentication on (the default on port 25), a disk that filled up in
/// the middle of a message ended the session with no reply ("connection lost"): the checks at the
/// end of the data read the broken spool file back. SPEC §5 promises 452 4.3.1: the rest of the data
/// is read in step, the client gets 452 4.3.1, the refusal is logged, and the session goes on.
/// </summary>
public sealed class DiskFullInTheMiddleOfAMessage
{
    [Theory]
    [InlineData("DATA")]
    [InlineData("BDAT")]
    public async Task Answers452AndTheSessionGoesOn(string verb)
    {
        var storage = new FaultyDurability();
        await using var server = await TestServer.StartAsync(o => o.MailAuth.Enabled = true, durability: storage);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        // Past the spool's 16 KiB buffer: the write fails while the message still streams in.
        var content = FaultyStorageAcknowledgesNothing.Message(FaultyStorageAcknowledgesNothing.NewToken(), 200_000);
        await c.CommandAsync("MAIL FROM:<carol@remote.example>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        storage.Fault = StorageFault.DiskFull;
        string reply;
        if (verb == "DATA")
        {
            await c.CommandAsync("DATA", 354);
            await c.SendAsync([.. content, .. ".\r\n"u8]);
            reply = await c.ReadReplyAsync();
        }
        else
        {
            await c.SendAsync([.. Encoding.ASCII.GetBytes($"BDAT {content.Length} LAST\r\n"), .. content]);
            reply = await c.ReadReplyAsync();
        }
        Assert.True(reply.StartsWith("452 4.3.1", StringComparison.Ordinal), $"got: {reply}\nLog:\n{server.Logs}");
        Assert.True(storage.Injected > 0, "the full disk was never reached");
        await server.WaitForLogAsync("event=rejected", "reason=disk_full");
        storage.Fault = StorageFault.None;
        await c.CommandAsync("NOOP", 250);
        await c.CommandAsync("QUIT", 221);
    }
}
