using Postern.Protocol.Addresses;

namespace Postern.Protocol.Tests.Addresses;

/// <summary>
/// The classic open-relay address forms parse as exactly one local part at one domain, or not at all;
/// nothing here ever yields the "remote" address hidden inside.
/// </summary>
public sealed class RelayAddressForms
{
    [Theory]
    [InlineData("user%remote.example@local.example", "user%remote.example", "local.example")]
    [InlineData("\"user@remote.example\"@local.example", "\"user@remote.example\"", "local.example")]
    [InlineData("remote.example!user@local.example", "remote.example!user", "local.example")]
    [InlineData("\"a.b\"@local.example", "a.b", "local.example")]
    public void HiddenRemoteStaysInTheLocalPart(string text, string local, string domain)
    {
        Assert.Equal(AddressError.None, AddressParser.TryParseMailbox(text, false, out var m));
        Assert.Equal(local, m!.LocalPart);
        Assert.Equal(domain, m.Domain);
    }

    [Theory]
    [InlineData("user@remote.example@local.example")]
    [InlineData("@local.example")]
    [InlineData("user@")]
    [InlineData("user@-bad.example")]
    [InlineData("us er@local.example")]
    [InlineData(".user@local.example")]
    [InlineData("user..x@local.example")]
    [InlineData("user@[300.1.1.1]")]
    public void MalformedIsRefused(string text) =>
        Assert.NotEqual(AddressError.None, AddressParser.TryParseMailbox(text, false, out _));

    [Theory]
    [InlineData("user@[127.0.0.1]")]
    [InlineData("user@[IPv6:::1]")]
    public void AddressLiteralsAreRecognised(string text)
    {
        Assert.Equal(AddressError.None, AddressParser.TryParseMailbox(text, false, out var m));
        Assert.True(m!.IsAddressLiteral);
    }

    [Theory]
    [InlineData(64, AddressError.None)]
    [InlineData(65, AddressError.TooLong)]
    public void LocalPartLimit(int length, AddressError expected) =>
        Assert.Equal(expected, AddressParser.TryParseMailbox(new string('a', length) + "@x.example", false, out _));

    [Fact]
    public void Utf8NeedsSmtpUtf8()
    {
        Assert.Equal(AddressError.NeedsSmtpUtf8, AddressParser.TryParseMailbox("jörg@例え.jp", false, out _));
        Assert.Equal(AddressError.None, AddressParser.TryParseMailbox("jörg@例え.jp", true, out var m));
        Assert.True(m!.IsInternational);
    }
}
