using Postern.Protocol.Session;

namespace Postern.Protocol.Tests.Session;

/// <summary>
/// Transcripts against the sans-I/O engine, in memory (issue 12, "the engine"): each misbehaviour
/// of the TCP transcripts, checked in milliseconds, and each fed whole and one octet at a time
/// (the engine must frame the same however the network cuts the input).
/// </summary>
public sealed class DialogueInMemory
{
    public static TheoryData<int> Pieces => [0, 1, 7];

    [Theory]
    [MemberData(nameof(Pieces))]
    public void GreetingAndEhloListTheExtensions(int piece)
    {
        var d = new EngineDialogue().Send("EHLO client.example\r\n", piece);
        Assert.StartsWith("220 mx.example.test ESMTP Postern", d.Replies[0].ToString(), StringComparison.Ordinal);
        var ehlo = d.Replies[1].Text;
        foreach (var ext in new[] { "PIPELINING", "SIZE 1000", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "STARTTLS", "CHUNKING", "DSN" })
        {
            Assert.Contains(ext, ehlo, StringComparison.Ordinal);
        }
        Assert.DoesNotContain("AUTH", ehlo, StringComparison.Ordinal);
        Assert.Equal(SessionState.Ready, d.Engine.State);
    }

    [Theory]
    [MemberData(nameof(Pieces))]
    public void APipelinedTransactionIsAnsweredInOrder(int piece)
    {
        var d = new EngineDialogue().Send("EHLO c.example\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n", piece);
        Assert.Equal(["220", "250", "250 2.1.0", "250 2.1.5", "250 2.1.5", "354"], d.Codes);
    }

    [Fact]
    public void ACommandThatEndsAGroupSaysWhenMoreFollowed()
    {
        var engine = new SmtpEngine("example.test", 100);
        var input = new System.Buffers.ReadOnlySequence<byte>("STARTTLS\r\nMAIL FROM:<x@y.example>\r\n"u8.ToArray());
        var reader = new System.Buffers.SequenceReader<byte>(input);
        var step = Assert.IsType<EngineStep.Execute>(engine.Next(ref reader));
        Assert.True(step.MoreBuffered, "STARTTLS followed by more in the same read is injection (RFC 3207 §5)");
        var ready = new SmtpEngine("example.test", 100);
        input = new System.Buffers.ReadOnlySequence<byte>("EHLO c\r\n"u8.ToArray());
        reader = new System.Buffers.SequenceReader<byte>(input);
        ready.Succeeded(Assert.IsType<EngineStep.Execute>(ready.Next(ref reader)).Command);
        input = new System.Buffers.ReadOnlySequence<byte>("MAIL FROM:<x@y.example>\r\nRCPT TO:<a@b.example>\r\n"u8.ToArray());
        reader = new System.Buffers.SequenceReader<byte>(input);
        Assert.False(Assert.IsType<EngineStep.Execute>(ready.Next(ref reader)).MoreBuffered, "MAIL may be pipelined");
    }

    [Theory]
    [MemberData(nameof(Pieces))]
    public void BdatChunksAreCountedNotTerminated(int piece)
    {
        var d = new EngineDialogue().Send("EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<b@example.test>\r\nBDAT 13\r\nQUIT\r\nQUIT\r\nxBDAT 3 LAST\r\n.\r\nNOOP\r\n", piece);
        Assert.Equal(["QUIT\r\nQUIT\r\nx", ".\r\n"], d.Chunks);
        Assert.Equal(["220", "250", "250 2.1.0", "250 2.1.5", "250 2.0.0", "250 2.0.0", "250 2.0.0"], d.Codes);
        Assert.Equal(SessionState.Ready, d.Engine.State);
        Assert.False(d.Closed);
    }

    [Theory]
    [MemberData(nameof(Pieces))]
    public void ABdatOutOfSequenceIsReadThenRefused(int piece)
    {
        var d = new EngineDialogue().Send("EHLO c\r\nBDAT 14\r\nQUIT\r\nQUIT\r\nxxNOOP\r\n", piece);
        Assert.Equal(["220", "250", "503 5.5.1", "250 2.0.0"], d.Codes);
        Assert.False(d.Closed, "the chunk's QUITs were read as commands");
    }

    [Theory]
    [MemberData(nameof(Pieces))]
    public void ALongLineIsRefusedOnceAndSkippedToItsEnd(int piece)
    {
        var d = new EngineDialogue().Send("NOOP " + new string('x', 2000) + " QUIT\r\nNOOP\r\n", piece);
        Assert.Equal(["220", "500 5.5.2", "250 2.0.0"], d.Codes);
        Assert.Equal([EngineRefusal.LineTooLong], d.Refusals);
        Assert.False(d.Closed);
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: x\r\n\r\n")]
    [InlineData("post /form HTTP/1.0\r\n")]
    [InlineData("CONNECT mx.example.test:25 HTTP/1.1\r\n")]
    public void HttpAsTheFirstLineIsRefusedAndClosed(string request)
    {
        var d = new EngineDialogue().Send(request);
        Assert.Equal(["220", "554 5.7.0"], d.Codes);
        Assert.True(d.Closed);
        Assert.Equal([EngineRefusal.NonSmtp], d.Refusals);
    }

    [Theory]
    [InlineData("EHLO c\nMAIL FROM:<smuggled@remote.example>\r\n")]
    [InlineData("NO\rOP\r\nMAIL FROM:<smuggled@remote.example>\r\n")]
    [InlineData("NOOP\r\rMAIL FROM:<smuggled@remote.example>\r\n")]
    [InlineData("\nMAIL FROM:<smuggled@remote.example>\r\n")]
    public void ABareLineEndingInACommandClosesAndNothingAfterItRuns(string input)
    {
        foreach (var piece in new[] { 0, 1 })
        {
            var d = new EngineDialogue().Send(input, piece);
            Assert.Equal(["220", "554 5.5.2"], d.Codes);
            Assert.True(d.Closed);
            Assert.Equal([EngineRefusal.BareLineEnding], d.Refusals);
            Assert.Equal(SessionState.Connected, d.Engine.State);
        }
    }

    [Fact]
    public void JunkPastTheLimitCloses()
    {
        var d = new EngineDialogue(maxJunkCommands: 3).Send("EHLO c\r\nNOOP\r\nVRFY a\r\nHELP\r\nRSET\r\nNOOP\r\n");
        Assert.Equal(["220", "250", "250 2.0.0", "252 2.5.2", "214 2.0.0", "421 4.7.0"], d.Codes);
        Assert.True(d.Closed);
    }

    [Fact]
    public void UnknownAndRefusedCommandsAreJunkAndAMessageResetsTheCount()
    {
        var d = new EngineDialogue(maxJunkCommands: 3).Send("XYZZY\r\nRCPT TO:<a@example.test>\r\nEHLO c\r\n");
        Assert.Equal(2, d.Engine.Junk);
        d.Engine.MessageAccepted();
        Assert.Equal(0, d.Engine.Junk);
        d.Send("NOOP\r\nNOOP\r\nNOOP\r\nNOOP\r\n");
        Assert.Equal("421 4.7.0", d.Codes.Last());
    }

    [Fact]
    public void OutOfOrderCommandsGetTheReplyOfTheirState()
    {
        var d = new EngineDialogue().Send("MAIL FROM:<a@remote.example>\r\nEHLO c\r\nRCPT TO:<b@example.test>\r\nDATA\r\nMAIL FROM:<a@remote.example>\r\nDATA\r\nMAIL FROM:<a@remote.example>\r\n");
        Assert.Equal(["220", "503 5.5.1", "250", "503 5.5.1", "503 5.5.1", "250 2.1.0", "503 5.5.1", "503 5.5.1"], d.Codes);
        Assert.Equal(["Send HELO/EHLO first", "Need MAIL command first", "Need MAIL command first", "Need RCPT command first", "Sender already specified"],
            d.Replies.Where(r => r.Code == 503).Select(r => r.Text));
    }

    [Fact]
    public void DataAfterBdatIsRefused()
    {
        var d = new EngineDialogue().Send("EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<b@example.test>\r\nBDAT 2\r\nabDATA\r\n");
        Assert.Equal("503 5.5.1", d.Codes.Last());
        Assert.Equal("DATA not permitted after BDAT in the same transaction", d.Replies[^1].Text);
    }

    [Fact]
    public void BeforeTlsOnlyTheBasicsAreAllowed()
    {
        var d = new EngineDialogue(tlsRequired: true).Send("EHLO c\r\nMAIL FROM:<a@remote.example>\r\nAUTH PLAIN\r\nNOOP\r\n");
        Assert.Equal(["220", "250", "530 5.7.0", "538 5.7.11", "250 2.0.0"], d.Codes);
    }

    [Fact]
    public void EveryVerbHasARowAndTheJunkColumnIsPostfixs()
    {
        foreach (var verb in Enum.GetValues<Postern.Protocol.Commands.Verb>().Where(v => v != Postern.Protocol.Commands.Verb.Unknown))
        {
            Assert.NotNull(CommandTable.For(verb));
        }
        var junk = Enum.GetValues<Postern.Protocol.Commands.Verb>().Where(CommandTable.IsJunk).Select(v => v.ToString());
        Assert.Equal(["Rset", "Noop", "Vrfy", "Expn", "Help", "Unknown"], junk);
    }
}
