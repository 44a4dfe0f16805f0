using Org.BouncyCastle.Crypto.Parameters;
using Postern.MailAuth.Dkim;

namespace Postern.MailAuth.Tests.Dkim;

/// <summary>Key records (RFC 6376 §3.6.1, RFC 8463 §4.2) and the tag-list grammar (§3.2).</summary>
public sealed class KeyRecords
{
    // RFC 8463 Appendix A.2.
    private const string Rsa1024 = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";
    private const string Ed = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    [Fact]
    public void RsaWithEveryTag()
    {
        var r = DkimKeyRecord.Parse($"v=DKIM1; h=sha1:sha256; k=rsa; n=notes; s=email:web; t=y:s:future; p={Rsa1024}", out var error);
        Assert.Null(error);
        Assert.NotNull(r);
        Assert.Equal(DkimKeyType.Rsa, r.KeyType);
        Assert.Equal(1024, r.KeyBits);
        Assert.True(r.Testing);
        Assert.True(r.StrictIdentity);
        Assert.True(r.AllowsHash("sha256"));
    }

    [Fact]
    public void FoldedAndSpacedValuesAndATrailingSemicolon()
    {
        var folded = string.Join("\r\n ", Rsa1024.Chunk(40).Select(c => new string(c)));
        var r = DkimKeyRecord.Parse($" k = rsa ;\tp = {folded} ; ", out var error);
        Assert.Null(error);
        Assert.Equal(1024, r!.KeyBits);
        Assert.False(r.Testing);
        Assert.Null(r.HashAlgorithms);
    }

    [Fact]
    public void Ed25519IsTheRaw32Octets()
    {
        var r = DkimKeyRecord.Parse($"v=DKIM1; k=ed25519; p={Ed}", out _);
        Assert.IsType<Ed25519PublicKeyParameters>(r!.PublicKey);
        Assert.Equal(256, r.KeyBits);
    }

    [Fact]
    public void EmptyPIsRevoked()
    {
        var r = DkimKeyRecord.Parse("v=DKIM1; p=", out var error);
        Assert.Null(error);
        Assert.True(r!.Revoked);
    }

    [Theory]
    [InlineData("p=" + Rsa1024 + "; v=DKIM1", "not the first tag")]
    [InlineData("v=DKIM2; p=" + Rsa1024, "not DKIM1")]
    [InlineData("v=DKIM1; k=dsa; p=" + Rsa1024, "k=dsa")]
    [InlineData("v=DKIM1; s=chat:im; p=" + Rsa1024, "not for email")]
    [InlineData("v=DKIM1; k=rsa", "no p=")]
    [InlineData("v=DKIM1; p=!!!", "not base64")]
    [InlineData("v=DKIM1; k=rsa; p=" + Ed, "not an RSA public key")]
    [InlineData("v=DKIM1; k=ed25519; p=" + Rsa1024, "not an Ed25519 public key")]
    [InlineData("v=DKIM1; p=a; p=b", "duplicate tag")]
    [InlineData("v=DKIM1; 1x=2; p=" + Rsa1024, "bad tag name")]
    [InlineData("v=DKIM1; t; p=" + Rsa1024, "without '='")]
    public void Unusable(string record, string reason)
    {
        Assert.Null(DkimKeyRecord.Parse(record, out var error));
        Assert.Contains(reason, error);
    }

    [Theory]
    [InlineData("example.com", "sel", "sel._domainkey.example.com")]
    [InlineData("Example.COM.", "Sel", "sel._domainkey.example.com")]
    [InlineData("bücher.example", "s1", "s1._domainkey.xn--bcher-kva.example")]
    [InlineData("example.com", "a.b", "a.b._domainkey.example.com")]
    [InlineData("example.com", "../x", null)]
    [InlineData("example.com", "a b", null)]
    [InlineData("exa mple.com", "s", null)]
    [InlineData("example..com", "s", null)]
    public void KeyNames(string domain, string selector, string? name) => Assert.Equal(name, DnsDkimKeyLocator.KeyName(domain, selector));

    [Fact]
    public async Task ABadSelectorIsNotLookedUp()
    {
        var dns = new DkimTestDns();
        var message = "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=a\\b; h=from; bh=AAAA; b=AAAA\r\nFrom: a@example.com\r\n\r\n"u8.ToArray();
        var result = Assert.Single(await new DkimVerifier(dns, TimeProvider.System).VerifyAsync(message));
        Assert.Equal(AuthResult.PermError, result.Result);
        Assert.Equal(0, dns.Queries);
    }

    [Fact]
    public async Task TheLocatorServesMimeKit()
    {
        var dns = new DkimTestDns().Add("brisbane._domainkey.example.com", $"v=DKIM1; k=ed25519; p={Ed}").Add("gone._domainkey.example.com", "p=");
        var locator = new DnsDkimKeyLocator(dns);
        Assert.IsType<Ed25519PublicKeyParameters>(await locator.LocatePublicKeyAsync("dns/txt", "example.com", "brisbane"));
        Assert.Equal(AuthResult.PermError, (await Assert.ThrowsAsync<DkimKeyException>(() => locator.LocatePublicKeyAsync("dns/txt", "example.com", "gone"))).Result);
        Assert.Equal(AuthResult.PermError, (await Assert.ThrowsAsync<DkimKeyException>(() => locator.LocatePublicKeyAsync("dns/txt", "example.com", "missing"))).Result);
        dns.Set("down._domainkey.example.com", Postern.MailAuth.Dns.DnsAnswer<string>.TempError);
        Assert.Equal(AuthResult.TempError, (await Assert.ThrowsAsync<DkimKeyException>(() => locator.LocatePublicKeyAsync("dns/txt", "example.com", "down"))).Result);
        await Assert.ThrowsAsync<DkimKeyException>(() => locator.LocatePublicKeyAsync("http", "example.com", "brisbane"));
    }

    [Fact]
    public async Task TheFirstUsableOfSeveralRecordsIsUsed()
    {
        var dns = new DkimTestDns().Add("s._domainkey.example.com", "v=spf1 -all").Add("s._domainkey.example.com", $"k=ed25519; p={Ed}");
        var lookup = await new DnsDkimKeyLocator(dns).LookupAsync("example.com", "s");
        Assert.Equal(DkimKeyType.Ed25519, lookup.Record!.KeyType);
    }
}
