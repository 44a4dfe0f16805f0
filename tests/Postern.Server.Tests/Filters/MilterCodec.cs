using System.Net;
using System.Net.Sockets;
using System.Text;
using Postern.Server.Filters.Milter;

namespace Postern.Server.Tests.Filters;

/// <summary>The milter protocol's bytes, without a socket: frames out, replies in, header fields, addresses.</summary>
public sealed class MilterCodec
{
    [Fact]
    public void AFrameIsItsBigEndianLengthTheCommandAndTheData()
    {
        var f = new MilterFrame();
        f.Begin((byte)'O').UInt32(6).UInt32(0x1FF).UInt32(0x1FFFFF).End();
        f.Begin((byte)'H').CString("mail.example.org").End();
        var bytes = f.Written.ToArray();
        Assert.Equal(new byte[] { 0, 0, 0, 13, (byte)'O', 0, 0, 0, 6, 0, 0, 1, 0xFF, 0, 0x1F, 0xFF, 0xFF }, bytes[..17]);
        Assert.Equal(new byte[] { 0, 0, 0, 18, (byte)'H' }, bytes[17..22]);
        Assert.Equal("mail.example.org\0", Encoding.ASCII.GetString(bytes[22..]));
    }

    [Fact]
    public void ANulInsideAStringIsLeftOutSoTheFieldsAfterItStayInPlace()
    {
        var f = new MilterFrame();
        f.Begin((byte)'L').CString("X-A\0b"u8).CString("v").End();
        Assert.Equal("X-Ab\0v\0", Encoding.ASCII.GetString(f.Written.Span[5..]));
    }

    [Fact]
    public void NegotiationReplyCarriesVersionActionsStepsAndMacroLists()
    {
        byte[] data = [0, 0, 0, 6, 0, 0, 0, 0x11, 0, 0x10, 0, 0x20,
            0, 0, 0, 0, .. "{client_addr} j\0"u8, 0, 0, 0, 5, .. "i {auth_authen}\0"u8, 0, 0, 0, 9, .. "x\0"u8];
        var n = Assert.IsType<MilterReply.Negotiated>(MilterReply.Parse((byte)'O', data));
        Assert.Equal(6u, n.Version);
        Assert.Equal(MilterActions.AddHeaders | MilterActions.ChangeHeaders, n.Actions);
        Assert.Equal(MilterSteps.NoHeaders | MilterSteps.HeaderLeadingSpace, n.Steps);
        Assert.Equal(["client_addr", "j"], n.Macros[MilterStage.Connect]);
        Assert.Equal(["i", "auth_authen"], n.Macros[MilterStage.EndOfMessage]);
        Assert.Equal(2, n.Macros.Count); // Stage 9 does not exist: left out, as Postfix does.
    }

    [Theory]
    [InlineData(11)]
    [InlineData(0)]
    public void ANegotiationReplyTooShortIsAProtocolError(int length) =>
        Assert.Throws<MilterProtocolException>(() => MilterReply.Parse((byte)'O', new byte[length]));

    [Fact]
    public void AMacroListWithoutItsNulIsAProtocolError() =>
        Assert.Throws<MilterProtocolException>(() => MilterReply.Parse((byte)'O', new byte[] { 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, (byte)'j' }));

    [Theory]
    [InlineData("554 5.7.1 Go away", 554, "5.7.1", "Go away")]
    [InlineData("451 4.7.1 Greylisted, see https://example.org", 451, "4.7.1", "Greylisted, see https://example.org")]
    [InlineData("550 Blocked", 550, "5.7.1", "Blocked")]
    [InlineData("550", 550, "5.7.1", "Command rejected")]
    [InlineData("550-5.7.1 first\r\n550 5.7.1 second", 550, "5.7.1", "first\nsecond")]
    [InlineData("550 4.7.1 wrong class", 550, "5.7.1", "wrong class")]
    public void AReplyCodeBecomesAnSmtpReply(string text, int code, string enhanced, string words)
    {
        var d = Assert.IsType<MilterReply.Decision>(MilterReply.Parse((byte)'y', Encoding.UTF8.GetBytes(text + "\0")));
        Assert.Equal(code, d.Reply!.Code);
        Assert.Equal(enhanced, d.Reply.Enhanced);
        Assert.Equal(words, d.Reply.Text);
    }

    [Theory]
    [InlineData("250 2.0.0 fine")]
    [InlineData("hello")]
    [InlineData("550-5.7.1 one\r\n451 4.7.1 two")]
    [InlineData("")]
    public void AReplyCodeThatIsNotA4xxOr5xxIsAProtocolError(string text) =>
        Assert.Throws<MilterProtocolException>(() => MilterReply.Parse((byte)'y', Encoding.UTF8.GetBytes(text + "\0")));

    [Fact]
    public void HeaderChangesKeepTheirIndexAndAnEmptyValueDeletes()
    {
        var insert = Assert.IsType<MilterReply.Change>(MilterReply.Parse((byte)'i', (byte[])[0, 0, 0, 1, .. "DKIM-Signature\0v=1\0"u8]));
        Assert.Equal(new MilterModification.InsertHeader(1, "DKIM-Signature", "v=1"), insert.Modification);
        var change = Assert.IsType<MilterReply.Change>(MilterReply.Parse((byte)'m', (byte[])[0, 0, 0, 2, .. "Subject\0[SPAM] hi\0"u8]));
        Assert.Equal(new MilterModification.ChangeHeader(2, "Subject", "[SPAM] hi"), change.Modification);
        var delete = Assert.IsType<MilterReply.Change>(MilterReply.Parse((byte)'m', (byte[])[0, 0, 0, 1, .. "X-Spam-Flag\0\0"u8]));
        Assert.Equal(new MilterModification.DeleteHeader(1, "X-Spam-Flag"), delete.Modification);
        Assert.Equal(MilterActions.ChangeHeaders, delete.Needs);
    }

    [Fact]
    public void EnvelopeChangesCarryTheirParameters()
    {
        Assert.Equal(new MilterModification.ChangeSender("<bounce@example.org>", "SIZE=10"),
            ((MilterReply.Change)MilterReply.Parse((byte)'e', "<bounce@example.org>\0SIZE=10\0"u8.ToArray())).Modification);
        Assert.Equal(new MilterModification.AddRecipient("<archive@example.org>", null),
            ((MilterReply.Change)MilterReply.Parse((byte)'+', "<archive@example.org>\0"u8.ToArray())).Modification);
        var withArgs = (MilterReply.Change)MilterReply.Parse((byte)'2', "<a@example.org>\0NOTIFY=NEVER\0"u8.ToArray());
        Assert.Equal(new MilterModification.AddRecipient("<a@example.org>", "NOTIFY=NEVER"), withArgs.Modification);
        Assert.Equal(MilterActions.AddRcptWithArgs, withArgs.Needs);
        Assert.Equal(new MilterModification.DeleteRecipient("<b@example.org>"),
            ((MilterReply.Change)MilterReply.Parse((byte)'-', "<b@example.org>\0"u8.ToArray())).Modification);
        Assert.Equal(new MilterModification.Quarantine("virus found"),
            ((MilterReply.Change)MilterReply.Parse((byte)'q', "virus found\0"u8.ToArray())).Modification);
    }

    [Theory]
    [InlineData('h', "Name-without-value")]
    [InlineData('h', "a\0b\0c\0")]
    [InlineData('+', "")]
    [InlineData('i', "\0\0")]
    [InlineData('Z', "")]
    [InlineData('4', "")]
    public void MalformedRepliesAreProtocolErrors(char code, string data) =>
        Assert.Throws<MilterProtocolException>(() => MilterReply.Parse((byte)code, Encoding.ASCII.GetBytes(data)));

    [Fact]
    public void HeaderFieldsAreSplitWithFoldedLinesJoinedByLineFeed()
    {
        var section = "From: a@example.org\r\nSubject: one\r\n two\r\n\tthree\r\nX-Empty:\r\nX-Spaced :  v\r\n\r\nbody: not a header\r\n"u8.ToArray();
        var fields = HeaderFields.Split(section, keepLeadingSpace: false)
            .Select(f => (Encoding.ASCII.GetString(f.Name.Span), Encoding.ASCII.GetString(f.Value))).ToList();
        Assert.Equal([("From", "a@example.org"), ("Subject", "one\n two\n\tthree"), ("X-Empty", ""), ("X-Spaced", "v")], fields);
        var kept = HeaderFields.Split(section, keepLeadingSpace: true).Select(f => Encoding.ASCII.GetString(f.Value)).ToList();
        Assert.Equal([" a@example.org", " one\n two\n\tthree", "", "  v"], kept);
    }

    [Fact]
    public void AHeaderSectionWithoutItsEmptyLineEndsAtItsEnd()
    {
        var fields = HeaderFields.Split("A: 1\r\nB: 2"u8.ToArray(), keepLeadingSpace: false);
        Assert.Equal(["1", "2"], fields.Select(f => Encoding.ASCII.GetString(f.Value)));
    }

    [Theory]
    [InlineData("unix:/run/spamass/spamass.sock", "/run/spamass/spamass.sock")]
    [InlineData("local:/run/x.sock", "/run/x.sock")]
    [InlineData("/var/run/opendkim.sock", "/var/run/opendkim.sock")]
    public void UnixAddresses(string text, string path)
    {
        Assert.True(MilterAddress.TryParse(text, out var ep));
        Assert.Equal(path, Assert.IsType<UnixDomainSocketEndPoint>(ep).ToString());
    }

    [Theory]
    [InlineData("inet:127.0.0.1:11332", "127.0.0.1:11332")]
    [InlineData("inet:11332@127.0.0.1", "127.0.0.1:11332")]
    [InlineData("127.0.0.1:8891", "127.0.0.1:8891")]
    [InlineData("[::1]:8891", "[::1]:8891")]
    [InlineData("inet6:8891@[::1]", "[::1]:8891")]
    public void TcpAddresses(string text, string endPoint)
    {
        Assert.True(MilterAddress.TryParse(text, out var ep));
        Assert.Equal(IPEndPoint.Parse(endPoint), ep);
    }

    [Fact]
    public void AHostNameIsResolvedWhenConnecting()
    {
        Assert.True(MilterAddress.TryParse("inet:rspamd.internal:11332", out var ep));
        Assert.Equal(new DnsEndPoint("rspamd.internal", 11332), ep);
    }

    [Theory]
    [InlineData("")]
    [InlineData("inet:localhost")]
    [InlineData("localhost:0")]
    [InlineData("localhost:65536")]
    [InlineData("unix:relative.sock")]
    [InlineData("bad host:25")]
    public void NotAddresses(string text) => Assert.False(MilterAddress.TryParse(text, out _));
}
