using System.Text;
using Microsoft.Extensions.Time.Testing;
using Postern.MailAuth.Dkim;

namespace Postern.MailAuth.Tests.Dkim;

/// <summary>t= and x= (RFC 6376 §3.5) against the injected clock.</summary>
public sealed class SignatureTimes
{
    private static readonly DateTimeOffset Signed = new(2026, 11, 28, 12, 0, 0, TimeSpan.Zero);
    private static readonly byte[] Message = Encoding.ASCII.GetBytes("From: a@example.com\r\nSubject: time\r\n\r\nTick.\r\n");

    [Theory]
    [InlineData(0, AuthResult.Pass)]
    [InlineData(3599, AuthResult.Pass)]
    [InlineData(3600 + 299, AuthResult.Pass)] // within the 5-minute clock skew
    [InlineData(3600 + 301, AuthResult.PermError)]
    [InlineData(86400 * 30, AuthResult.PermError)]
    public async Task ExpiresAtX(int secondsLater, AuthResult expected)
    {
        var signed = Sign(new DkimSignerOptions { SignaturesExpireAfter = TimeSpan.FromHours(1) }, Signed);
        Assert.Contains($"x={Signed.ToUnixTimeSeconds() + 3600};", Encoding.ASCII.GetString(signed).Replace("\r\n\t", " "));
        var results = await SignThenVerify.Verifier(new FakeTimeProvider(Signed.AddSeconds(secondsLater))).VerifyAsync(signed);
        Assert.All(results, r => Assert.Equal(expected, r.Result));
        if (expected == AuthResult.PermError)
        {
            Assert.All(results, r => Assert.Contains("expired", r.Reason));
        }
    }

    [Fact]
    public async Task WithoutXNothingExpires()
    {
        var results = await SignThenVerify.Verifier(new FakeTimeProvider(Signed.AddYears(5))).VerifyAsync(Sign(DkimSignerOptions.Default, Signed));
        Assert.All(results, r => Assert.Equal(AuthResult.Pass, r.Result));
    }

    [Theory]
    [InlineData(-14 * 3600, AuthResult.Pass)] // the signer's clock a time zone ahead
    [InlineData(-23 * 3600, AuthResult.Pass)]
    [InlineData(-25 * 3600, AuthResult.PermError)] // signed more than a day in the future
    public async Task ATimestampFromTheFuture(int verifiedSecondsLater, AuthResult expected)
    {
        var results = await SignThenVerify.Verifier(new FakeTimeProvider(Signed.AddSeconds(verifiedSecondsLater))).VerifyAsync(Sign(DkimSignerOptions.Default, Signed));
        Assert.All(results, r => Assert.Equal(expected, r.Result));
        if (expected == AuthResult.PermError)
        {
            Assert.All(results, r => Assert.Contains("in the future", r.Reason));
        }
    }

    [Fact]
    public async Task XBeforeTIsAPermError()
    {
        var message = Encoding.ASCII.GetBytes("DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=202611-rsa; t=200; x=100; h=from; bh=AAAA; b=AAAA\r\n").Concat(Message).ToArray();
        var result = Assert.Single(await SignThenVerify.Verifier(new FakeTimeProvider(Signed)).VerifyAsync(message));
        Assert.Equal(AuthResult.PermError, result.Result);
        Assert.Contains("x= is before t=", result.Reason);
    }

    private static byte[] Sign(DkimSignerOptions options, DateTimeOffset at)
    {
        var fields = SignThenVerify.Signer(options, new FakeTimeProvider(at)).Sign(Message);
        Assert.Contains($"t={at.ToUnixTimeSeconds()};", fields);
        return [.. Encoding.ASCII.GetBytes(fields), .. Message];
    }
}
