using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Queue;
using Postern.Server.Storage;

namespace Postern.IntegrationTests.CrashSafety;

/// <summary>
/// SPEC §6: 250 is said only once message and envelope are on stable storage. When the disk fails
/// (fsync of the file, ENOSPC on a write, fsync of the queue directory) the client gets the local
/// error reply after the end of its data — 452 4.3.1 for any storage failure, a full disk or a failed write or fsync (issue 2)
/// — and nothing of the message is left in the queue or delivered. Once the disk recovers, the
/// same connection goes on.
/// </summary>
public sealed class FaultyStorageAcknowledgesNothing
{
    private const string Recipient = "alice@example.test";

    [Theory]
    [InlineData("DATA")]
    [InlineData("BDAT")]
    public Task FailedFileFlushAnswers452AndKeepsNothing(string verb) =>
        RefusedAndNothingKeptAsync(verb, StorageFault.FileFlush, "452 4.3.1", bodyBytes: 300);

    [Theory]
    [InlineData("DATA")]
    [InlineData("BDAT")]
    public Task FullDiskAnswers452AndKeepsNothing(string verb) =>
        RefusedAndNothingKeptAsync(verb, StorageFault.DiskFull, "452 4.3.1", bodyBytes: 300);

    /// <summary>
    /// A message larger than the spool's write buffer meets the full disk while it still streams
    /// in: the server must read on to the end of the data (STYLE principle 2) and only then refuse.
    /// </summary>
    [Theory]
    [InlineData("DATA")]
    [InlineData("BDAT")]
    public Task FullDiskInTheMiddleOfALargeMessageAnswers452AfterItsEnd(string verb) =>
        RefusedAndNothingKeptAsync(verb, StorageFault.DiskFull, "452 4.3.1", bodyBytes: 200_000);

    [Theory]
    [InlineData("DATA")]
    [InlineData("BDAT")]
    public Task FailedDirectoryFlushAnswers452AndKeepsNothing(string verb) =>
        RefusedAndNothingKeptAsync(verb, StorageFault.DirectoryFlush, "452 4.3.1", bodyBytes: 300);

    [Fact]
    public void TheInjectedEnospcIsRecognisedAsAFullDisk()
    {
        Assert.True(SafeFile.IsDiskFull(FaultyDurability.DiskFullError()));
        Assert.True(SafeFile.IsDiskFull(new IOException("injected", 28)));
        Assert.False(SafeFile.IsDiskFull(new IOException("fsync failed: errno 5", 5)));
    }

    /// <summary>Every kind of fault in turn on one connection, then the disk recovers: the next message is accepted and delivered intact.</summary>
    [Theory]
    [InlineData("DATA")]
    [InlineData("BDAT")]
    public async Task NextMessageOnTheSameConnectionIsAcceptedOnceTheFaultClears(string verb)
    {
        var storage = new FaultyDurability();
        await using var server = await TestServer.StartAsync(durability: storage);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        var refusedTokens = new List<string>();
        foreach (var (fault, expected) in new[]
        {
            (StorageFault.FileFlush, "452 4.3.1"),
            (StorageFault.DiskFull, "452 4.3.1"),
            (StorageFault.DirectoryFlush, "452 4.3.1"),
            (StorageFault.FileFlush, "452 4.3.1"),
        })
        {
            storage.Fault = fault;
            var before = storage.Injected;
            var token = NewToken();
            refusedTokens.Add(token);
            var reply = await SendMessageAsync(c, verb, Message(token, 500));
            Assert.True(reply.StartsWith(expected, StringComparison.Ordinal), $"{fault}: expected {expected}, got: {reply}");
            Assert.True(storage.Injected > before, $"the {fault} fault was never reached");
            AssertNothingKept(server);
        }

        storage.Fault = StorageFault.None;
        var good = NewToken();
        var content = Message(good, 5_000);
        var accepted = await SendMessageAsync(c, verb, content);
        Assert.StartsWith("250 2.0.0", accepted, StringComparison.Ordinal);
        await c.CommandAsync("QUIT", 221);

        var delivered = await server.WaitForDeliveryAsync(Recipient);
        await WaitForEmptyQueueAsync(server);
        var only = Assert.Single(server.Delivered(Recipient));
        var bytes = await File.ReadAllBytesAsync(only);
        Assert.Equal(content, TestServer.BodyAfterTrace(bytes));
        var text = Encoding.Latin1.GetString(bytes);
        Assert.All(refusedTokens, t => Assert.DoesNotContain(t, text, StringComparison.Ordinal));
        Assert.Single(delivered);
    }

    /// <summary>
    /// A slow disk: while the fsync of the spool file, or of queue/messages after the rename, has
    /// not returned, no reply may reach the client; the 250 comes only once it has.
    /// </summary>
    [Theory]
    [InlineData(StorageFault.FileFlush, "DATA")]
    [InlineData(StorageFault.FileFlush, "BDAT")]
    [InlineData(StorageFault.DirectoryFlush, "DATA")]
    [InlineData(StorageFault.DirectoryFlush, "BDAT")]
    public async Task NoReplyUntilTheFlushReturns(StorageFault step, string verb)
    {
        var storage = new FaultyDurability
        {
            HoldAt = step,
            Applies = path => path.Contains($"{Path.DirectorySeparatorChar}queue{Path.DirectorySeparatorChar}", StringComparison.Ordinal),
        };
        await using var server = await TestServer.StartAsync(durability: storage);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        var content = Message(NewToken(), 2_000);
        var reply = SendMessageAsync(c, verb, content);
        try
        {
            await storage.Held.WaitAsync(TimeSpan.FromSeconds(10));
            var queue = Path.Combine(server.DataDir, "queue");
            if (step == StorageFault.DirectoryFlush)
            {
                // The rename is done; only the directory fsync that makes it durable is pending.
                Assert.Single(Directory.GetFiles(Path.Combine(queue, "messages")));
            }
            else
            {
                Assert.Single(Directory.GetFiles(Path.Combine(queue, "tmp")));
                Assert.Empty(Directory.GetFiles(Path.Combine(queue, "messages")));
            }
            var early = await Task.WhenAny(reply, Task.Delay(500));
            Assert.True(early != reply, $"the server replied while its {step} had not returned: {(reply.IsCompleted ? await reply : "")}");
        }
        finally
        {
            storage.ReleaseHold();
        }
        Assert.StartsWith("250 2.0.0", await reply, StringComparison.Ordinal);
        await c.CommandAsync("QUIT", 221);
        var delivered = await server.WaitForDeliveryAsync(Recipient);
        Assert.Equal(content, TestServer.BodyAfterTrace(Assert.Single(delivered)));
    }

    /// <summary>
    /// The other side of "acknowledges nothing": a Maildir whose disk fails does not count as a
    /// delivery. The recipient is deferred (a full disk is not a reason to bounce), the message stays
    /// in the queue, and once the disk recovers the retry delivers it intact.
    /// </summary>
    [Theory]
    [InlineData(StorageFault.FileFlush)]
    [InlineData(StorageFault.DiskFull)]
    [InlineData(StorageFault.DirectoryFlush)]
    public async Task FailingMaildirDefersTheDeliveryAndLosesNothing(StorageFault fault)
    {
        var storage = new FaultyDurability
        {
            Fault = fault,
            Applies = path => path.Contains($"{Path.DirectorySeparatorChar}mail{Path.DirectorySeparatorChar}", StringComparison.Ordinal),
        };
        await using var server = await TestServer.StartAsync(durability: storage);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        var content = Message(NewToken(), 3_000);
        var reply = await SendMessageAsync(c, "DATA", content);
        Assert.StartsWith("250 2.0.0", reply, StringComparison.Ordinal);
        await c.CommandAsync("QUIT", 221);
        var id = new QueueId(reply[(reply.LastIndexOf(' ') + 1)..].Trim());

        var deadline = Environment.TickCount64 + 10_000;
        while (server.Server.Spool.ReadState(id)?.Recipients.SingleOrDefault()?.Status != RecipientStatus.Deferred)
        {
            Assert.True(Environment.TickCount64 < deadline, $"{id} was never deferred; state: {server.Server.Spool.ReadState(id)?.Recipients.SingleOrDefault()?.Status.Word() ?? "none"}\nLog:\n{server.Logs}");
            await Task.Delay(20);
        }
        Assert.True(storage.Injected > 0, $"the {fault} fault was never reached");
        Assert.True(File.Exists(server.Server.Spool.MessagePath(id)), "a message whose delivery failed left the queue");
        if (fault != StorageFault.DirectoryFlush)
        {
            // Only a failed fsync of new/ comes after the rename into new/.
            Assert.Empty(server.Delivered(Recipient));
        }

        // The disk recovers; the retry (normally a minute later) is asked for at once. Again and
        // again: a request that comes while the failed attempt is still finishing is dropped.
        storage.Fault = StorageFault.None;
        var messagePath = server.Server.Spool.MessagePath(id);
        for (var tries = 0; File.Exists(messagePath); tries++)
        {
            Assert.True(tries < 100, $"{id} was not delivered once the disk recovered\nLog:\n{server.Logs}");
            server.Server.Runner.Enqueue(id);
            await Task.Delay(100);
        }
        var copies = server.Delivered(Recipient);
        Assert.NotEmpty(copies);
        Assert.All(copies, f => Assert.Equal(content, TestServer.BodyAfterTrace(File.ReadAllBytes(f))));
    }

    /// <summary>
    /// One refused message, then proof that it was not kept behind the client's back: after the
    /// fault clears a second message is accepted on the same connection, and once the queue has
    /// drained only that second message is in the mailbox.
    /// </summary>
    private static async Task RefusedAndNothingKeptAsync(string verb, StorageFault fault, string expected, int bodyBytes)
    {
        var storage = new FaultyDurability();
        await using var server = await TestServer.StartAsync(durability: storage);
        await using var c = await RawSmtp.OpenAsync(server.MxPort);

        storage.Fault = fault;
        var refused = NewToken();
        var reply = await SendMessageAsync(c, verb, Message(refused, bodyBytes));
        Assert.True(reply.StartsWith(expected, StringComparison.Ordinal), $"expected {expected}, got: {reply}\nLog:\n{server.Logs}");
        Assert.True(storage.Injected > 0, $"the {fault} fault was never reached");
        AssertNothingKept(server);

        // The dialogue is still in step (the whole refused message was read, none of it as commands).
        await c.CommandAsync("NOOP", 250);
        storage.Fault = StorageFault.None;
        var sentinel = NewToken();
        var accepted = await SendMessageAsync(c, verb, Message(sentinel, 300));
        Assert.True(accepted.StartsWith("250 2.0.0", StringComparison.Ordinal), $"after the fault cleared: {accepted}");
        await c.CommandAsync("QUIT", 221);

        await server.WaitForDeliveryAsync(Recipient);
        await WaitForEmptyQueueAsync(server);
        var only = Assert.Single(server.Delivered(Recipient));
        var text = Encoding.Latin1.GetString(await File.ReadAllBytesAsync(only));
        Assert.Contains(sentinel, text, StringComparison.Ordinal);
        Assert.DoesNotContain(refused, text, StringComparison.Ordinal);
    }

    /// <summary>Sends MAIL, RCPT and the content by DATA or by BDAT (in chunks of at most 64 KiB); returns the reply to the end of the message.</summary>
    internal static async Task<string> SendMessageAsync(RawSmtp c, string verb, byte[] content, string recipient = Recipient)
    {
        await c.CommandAsync("MAIL FROM:<carol@remote.example>", 250);
        await c.CommandAsync($"RCPT TO:<{recipient}>", 250);
        if (verb == "DATA")
        {
            await c.CommandAsync("DATA", 354);
            // The content ends with CRLF, so ".\r\n" completes <CRLF>.<CRLF>.
            await c.SendAsync([.. content, .. ".\r\n"u8]);
            return await c.ReadReplyAsync();
        }
        const int Chunk = 64 * 1024;
        for (var offset = 0; ; offset += Chunk)
        {
            var size = Math.Min(Chunk, content.Length - offset);
            var last = offset + size == content.Length;
            await c.SendAsync([.. Encoding.ASCII.GetBytes($"BDAT {size}{(last ? " LAST" : "")}\r\n"), .. content.AsSpan(offset, size)]);
            var reply = await c.ReadReplyAsync();
            if (last || !reply.StartsWith("250", StringComparison.Ordinal))
            {
                return reply;
            }
        }
    }

    internal static string NewToken() => "tok" + Guid.NewGuid().ToString("N");

    /// <summary>A message that names its token in a header and on every body line, of about <paramref name="bodyBytes"/> octets.</summary>
    internal static byte[] Message(string token, int bodyBytes)
    {
        var sb = new StringBuilder();
        sb.Append("From: Carol <carol@remote.example>\r\n");
        sb.Append("To: Alice <alice@example.test>\r\n");
        sb.Append("Subject: crash safety ").Append(token).Append("\r\n");
        sb.Append("Message-ID: <").Append(token).Append("@remote.example>\r\n");
        sb.Append("X-Token: ").Append(token).Append("\r\n\r\n");
        for (var line = 0; sb.Length < bodyBytes; line++)
        {
            sb.Append(token).Append(' ').Append(line.ToString("D6", System.Globalization.CultureInfo.InvariantCulture)).Append(' ')
                .Append('x', 40).Append("\r\n");
        }
        return Encoding.ASCII.GetBytes(sb.ToString());
    }

    private static void AssertNothingKept(TestServer server)
    {
        var queue = Path.Combine(server.DataDir, "queue");
        Assert.Empty(Directory.GetFiles(Path.Combine(queue, "messages")));
        Assert.Empty(Directory.GetFiles(Path.Combine(queue, "tmp")));
        Assert.Empty(server.Delivered(Recipient));
    }

    internal static async Task WaitForEmptyQueueAsync(TestServer server)
    {
        var messages = Path.Combine(server.DataDir, "queue", "messages");
        var deadline = Environment.TickCount64 + 10_000;
        while (Directory.GetFiles(messages).Length > 0)
        {
            Assert.True(Environment.TickCount64 < deadline, $"queue/messages still holds {string.Join(", ", Directory.GetFiles(messages).Select(Path.GetFileName))}\nLog:\n{server.Logs}");
            await Task.Delay(20);
        }
    }
}
