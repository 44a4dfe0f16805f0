using System.Text;
using Postern.Protocol.Commands;
using Postern.Protocol.Replies;

namespace Postern.Protocol.Tests.Commands;

public sealed class CommandParsing
{
    private static SmtpCommand P(string s) => CommandParser.Parse(Encoding.UTF8.GetBytes(s), "example.test");

    [Fact]
    public void VerbsAreCaseInsensitive()
    {
        Assert.IsType<HeloCommand>(P("ehlo x.example"));
        Assert.Equal(Verb.Quit, P("qUiT").Verb);
        Assert.Equal(Verb.Unknown, P("GET / HTTP/1.1").Verb);
    }

    [Fact]
    public void MailWithAllParameters()
    {
        var m = Assert.IsType<MailCommand>(P("MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ+2B1 SMTPUTF8"));
        Assert.Equal("a@b.example", m.From.ToString());
        Assert.Equal(1000, m.Size);
        Assert.Equal(BodyType.EightBitMime, m.Body);
        Assert.Equal(DsnReturn.Headers, m.Ret);
        Assert.Equal("QQ+2B1", m.EnvId);
        Assert.True(m.SmtpUtf8);
    }

    [Fact]
    public void NullReversePath() => Assert.True(Assert.IsType<MailCommand>(P("MAIL FROM:<>")).From.IsNull);

    [Fact]
    public void SpaceAfterColonIsTolerated() => Assert.IsType<MailCommand>(P("MAIL FROM: <a@b.example>"));

    [Theory]
    [InlineData("MAIL FROM:<a@b.example> SIZE=abc", 501)]
    [InlineData("MAIL FROM:<a@b.example> BODY=BINARYMIME", 504)]
    [InlineData("MAIL FROM:<a@b.example> FOO=1", 555)]
    [InlineData("MAIL FROM:<a@b.example> SIZE=1 SIZE=2", 501)]
    [InlineData("MAIL FROM:a@b.example", 501)]
    [InlineData("MAIL TO:<a@b.example>", 501)]
    [InlineData("MAIL FROM:<a@@b.example>", 501)]
    [InlineData("MAIL FROM:<jö@b.example>", 553)]
    [InlineData("RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS", 501)]
    [InlineData("RCPT TO:<a@b.example> NOTIFY=SOMETIMES", 501)]
    [InlineData("RCPT TO:<a@b.example> ORCPT=rfc822", 501)]
    [InlineData("RCPT TO:<user@remote@local.example>", 501)]
    [InlineData("BDAT x", 501)]
    [InlineData("BDAT 10 FIRST", 501)]
    [InlineData("DATA now", 501)]
    [InlineData("HELO", 501)]
    public void BadArgumentsHaveTheirOwnReply(string line, int code)
    {
        var c = Assert.IsType<InvalidCommand>(P(line));
        Assert.Equal(code, c.Reply.Code);
        Assert.NotNull(c.Reply.Enhanced);
    }

    [Fact]
    public void RcptDsnParameters()
    {
        var r = Assert.IsType<RcptCommand>(P("RCPT TO:<x@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+40example.test"));
        Assert.Equal(DsnNotify.Success | DsnNotify.Failure, r.Notify);
        Assert.Equal("rfc822;x+40example.test", r.ORcpt);
    }

    [Fact]
    public void BarePostmasterIsLocal()
    {
        var r = Assert.IsType<RcptCommand>(P("RCPT TO:<Postmaster>"));
        Assert.Equal("postmaster@example.test", r.To.ToString());
    }

    [Fact]
    public void SourceRouteIsDroppedAndFlagged()
    {
        var r = Assert.IsType<RcptCommand>(P("RCPT TO:<@local.example,@other.example:user@remote.example>"));
        Assert.Equal("user@remote.example", r.To.ToString());
        Assert.True(r.To.HadSourceRoute);
    }

    [Fact]
    public void BdatSizeAndLast()
    {
        var b = Assert.IsType<BdatCommand>(P("BDAT 1234 last"));
        Assert.Equal(1234, b.Size);
        Assert.True(b.Last);
    }

    [Fact]
    public void InvalidUtf8IsASyntaxError()
    {
        var c = CommandParser.Parse([.. "MAIL FROM:<"u8, 0xff, .. "@x>"u8], "example.test");
        Assert.Equal(Reply.SyntaxError, Assert.IsType<InvalidCommand>(c).Reply);
    }

    [Fact]
    public void MultiLineReplyFormat()
    {
        var bytes = new SmtpReply(250, null, "a\nb\nc").ToBytes();
        Assert.Equal("250-a\r\n250-b\r\n250 c\r\n", Encoding.ASCII.GetString(bytes));
        Assert.Equal("550 5.1.1 No such user here\r\n", Encoding.ASCII.GetString(Reply.UnknownUser.ToBytes()));
    }
}
