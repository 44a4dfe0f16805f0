using Postern.MailAuth.Dkim;

namespace Postern.MailAuth.Tests.Dkim;

/// <summary>The resinfo a DKIM result gives Authentication-Results (RFC 8601 §2.2, §2.7.1; RFC 6008 header.b).</summary>
public sealed class AuthenticationResultsText
{
    [Fact]
    public void Pass() => Assert.Equal(
        "dkim=pass header.d=example.com header.s=sel header.i=@example.com header.a=rsa-sha256 header.b=AbCdEfGh",
        new DkimSignatureResult(AuthResult.Pass, null, "example.com", "sel", "@example.com", "rsa-sha256", "AbCdEfGh", false).ToResInfo());

    [Fact]
    public void FailWithReasonAndQuotedValues() => Assert.Equal(
        "dkim=fail reason=\"body hash did not verify\" header.d=example.com header.s=sel header.i=\"a b@example.com\" header.a=ed25519-sha256 header.b=\"ab/+cd==\"",
        new DkimSignatureResult(AuthResult.Fail, "body hash did not verify", "example.com", "sel", "a b@example.com", "ed25519-sha256", "ab/+cd==", false).ToResInfo());

    [Fact]
    public void TestingAndErrors()
    {
        Assert.Equal("dkim=pass reason=\"key in testing mode\" header.d=example.com",
            new DkimSignatureResult(AuthResult.Pass, null, "example.com", null, null, null, null, true).ToResInfo());
        Assert.Equal("dkim=temperror reason=\"DNS \\\"error\\\"\"",
            new DkimSignatureResult(AuthResult.TempError, "DNS \"error\"", null, null, null, null, null, false).ToResInfo());
        Assert.StartsWith("dkim=permerror ", new DkimSignatureResult(AuthResult.PermError, "x", null, null, null, null, null, false).ToResInfo());
    }

    [Fact]
    public async Task NoSignatureIsAnEmptyList()
    {
        var results = await new DkimVerifier(new DkimTestDns(), TimeProvider.System).VerifyAsync("From: a@example.com\r\n\r\nHi\r\n"u8.ToArray());
        Assert.Empty(results);
    }

    [Fact]
    public async Task SignaturesPastTheLimitAreNotEvaluated()
    {
        var one = "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s; h=from; bh=AAAA; b=AAAA\r\n";
        var message = System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat(one, 3)) + "From: a@example.com\r\n\r\nHi\r\n");
        var dns = new DkimTestDns();
        var results = await new DkimVerifier(dns, TimeProvider.System, new DkimVerifierOptions { MaxSignatures = 2 }).VerifyAsync(message);
        Assert.Equal([AuthResult.PermError, AuthResult.PermError, AuthResult.Policy], results.Select(r => r.Result));
        Assert.Equal(1, dns.Queries);
    }
}
