using System.Text;
using Postern.Protocol.Addresses;
using Postern.Protocol.Commands;

namespace Postern.Protocol.Tests.Properties;

/// <summary>
/// What the fuzzers found, stated as plain behaviour (their inputs are in fuzz/regressions/ too).
/// </summary>
public sealed class FuzzFindings
{
    private static SmtpCommand P(string s) => CommandParser.Parse(Encoding.UTF8.GetBytes(s), "example.test");

    [Fact]
    public void SmtpUtf8InsideAQuotedLocalPartIsNotTheParameter()
    {
        // RFC 6531 §3.4: only the parameter after the path asks for SMTPUTF8.
        Assert.False(Assert.IsType<MailCommand>(P("MAIL FROM:<\"x SMTPUTF8 y\"@b.example>")).SmtpUtf8);
        Assert.Equal(553, Assert.IsType<InvalidCommand>(P("MAIL FROM:<\"x SMTPUTF8 \u00e9\"@b.example>")).Reply.Code);
        Assert.True(Assert.IsType<MailCommand>(P("MAIL FROM:<\"x\u00e9\"@b.example> SMTPUTF8")).SmtpUtf8);
    }

    [Fact]
    public void AParameterRightAfterThePathCountsAsOne() =>
        Assert.True(Assert.IsType<MailCommand>(P("MAIL FROM:<j\u00f6@b.example>SMTPUTF8")).SmtpUtf8);

    [Fact]
    public void AUtf8LocalPartIsInternationalWithAnAddressLiteralToo()
    {
        Assert.Equal(AddressError.None, AddressParser.TryParseMailbox("j\u00f6@[192.0.2.1]", allowUtf8: true, out var mailbox));
        Assert.True(mailbox!.IsInternational);
        Assert.Equal(AddressError.NeedsSmtpUtf8, AddressParser.TryParseMailbox("j\u00f6@[192.0.2.1]", allowUtf8: false, out _));
    }
}
