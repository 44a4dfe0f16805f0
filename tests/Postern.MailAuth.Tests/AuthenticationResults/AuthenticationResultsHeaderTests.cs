using MimeKit;
using Postern.MailAuth.AuthenticationResults;

namespace Postern.MailAuth.Tests.AuthenticationResults;

public sealed class AuthenticationResultsHeaderTests
{
    [Fact]
    public void FormatsEachMethodWithItsProperties()
    {
        var field = AuthenticationResultsHeader.Format("mx.example.com",
        [
            new MethodResult("spf", AuthResult.Pass, Properties: [("smtp.mailfrom", "sender@example.org")]),
            new MethodResult("dkim", AuthResult.Fail, "signature did not verify", [("header.d", "example.org"), ("header.s", "sel1"), ("header.b", "AbC/+12")]),
            new MethodResult("dmarc", AuthResult.Pass, Properties: [("header.from", "example.org")]),
        ]);
        Assert.Equal(
            "Authentication-Results: mx.example.com;\r\n\tspf=pass smtp.mailfrom=sender@example.org;\r\n" +
            "\tdkim=fail reason=\"signature did not verify\" header.d=example.org header.s=sel1 header.b=\"AbC/+12\";\r\n" +
            "\tdmarc=pass header.from=example.org\r\n", field);

        // MimeKit, an independent parser, reads it back the same.
        var parsed = MimeKit.Cryptography.AuthenticationResults.Parse(System.Text.Encoding.ASCII.GetBytes(field["Authentication-Results:".Length..].Trim()));
        Assert.Equal("mx.example.com", parsed.AuthenticationServiceIdentifier);
        Assert.Equal(["spf", "dkim", "dmarc"], parsed.Results.Select(r => r.Method));
        Assert.Equal("fail", parsed.Results[1].Result);
        Assert.Equal("signature did not verify", parsed.Results[1].Reason);
        Assert.Equal("AbC/+12", parsed.Results[1].Properties.Single(p => p.Property == "b").Value);
    }

    [Fact]
    public void NoMethodIsNone() =>
        Assert.Equal("Authentication-Results: mx.example.com; none\r\n", AuthenticationResultsHeader.Format("mx.example.com", Array.Empty<MethodResult>()));

    [Theory]
    [InlineData(" mx.example.com; spf=pass smtp.mailfrom=a@b", true)]
    [InlineData("MX.Example.COM;spf=pass", true)]
    [InlineData(" (forged) mx.example.com (comment) ; dkim=pass", true)]
    [InlineData(" mx.example.com 1; none", true)]
    [InlineData(" mx.example.com.evil.example; spf=pass", false)]
    [InlineData(" other.example; spf=pass", false)]
    [InlineData(" ", false)]
    public void ForgedFieldsWithOurAuthservIdAreRecognised(string value, bool ours) =>
        Assert.Equal(ours, AuthenticationResultsHeader.ClaimsToBe(value, "mx.example.com"));
}
