using System.Text;
using Microsoft.Extensions.Time.Testing;
using Postern.MailAuth.Dkim;

namespace Postern.MailAuth.Tests.Dkim;

/// <summary>
/// dkim/dkimpy (dkimpy's test data) with the expectations of its test_dkim.py and
/// test_dkim_ed25519.py as tests/conformance/README.md restates them: the signed vectors
/// verify; Postern's signatures with its keys verify, simple and relaxed, with and without l=;
/// tampering, broken key records, a From added after signing and a message without From fail.
/// </summary>
public sealed class DkimpyCases
{
    private static readonly FakeTimeProvider Clock = new(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));

    private static string Data(string file) => File.ReadAllText(DkimSuiteFiles.Path("dkimpy", file)).Trim();

    private static byte[] Message(string file) => DkimSuiteFiles.Crlf(File.ReadAllBytes(DkimSuiteFiles.Path("dkimpy", file)));

    private static DkimSigningKey RsaKey(string file = "test.private") => DkimSigningKey.Parse("example.com", "test", Data(file));

    private static DkimSigningKey Ed25519Key() => DkimSigningKey.Parse("example.com", "ed", Data("ed25519test.key"));

    private static DkimTestDns Dns(string rsaRecord = "test.txt") =>
        new DkimTestDns().Add("test._domainkey.example.com", Data(rsaRecord)).Add("ed._domainkey.example.com", Data("ed25519test.dns"));

    [Fact]
    public async Task Rfc6376SignedVerifiesWithBothRfc8463Keys()
    {
        var brisbane = DkimSigningKey.Parse("football.example.com", "brisbane", Data("rfc8032_7_1.key"));
        // RFC 8463 Appendix A.2 publishes this public key for the RFC 8032 §7.1 test 1 seed.
        Assert.Equal("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", brisbane.TxtRecord.Value);
        var dns = new DkimTestDns()
            .Add("test._domainkey.football.example.com", Data("test.txt"))
            .Add(brisbane.TxtRecord.Name, brisbane.TxtRecord.Value);
        var results = await new DkimVerifier(dns, Clock).VerifyAsync(Message("rfc6376.signed.msg"));
        Assert.Equal(["ed25519-sha256", "rsa-sha256"], results.Select(r => r.Algorithm));
        Assert.All(results, r => Assert.Equal(AuthResult.Pass, r.Result));
    }

    [Fact]
    public async Task EximEd25519SignatureVerifies()
    {
        var dns = new DkimTestDns().Add("sed._domainkey.test.ex", Data("eximtest.dns"));
        var result = Assert.Single(await new DkimVerifier(dns, Clock).VerifyAsync(Message("ed25519test2.msg")));
        Assert.True(result.Result == AuthResult.Pass, result.ToResInfo());
    }

    public static TheoryData<string, string, bool, bool> SignCases()
    {
        var data = new TheoryData<string, string, bool, bool>();
        foreach (var message in new[] { "test.message", "test2.message", "test_extra.message", "rfc6376.msg", "ed25519test.msg" })
        {
            foreach (var key in new[] { "test.private", "test2.private", "ed25519test.key" })
            {
                foreach (var (simple, length) in new[] { (false, false), (true, false), (false, true), (true, true) })
                {
                    data.Add(message, key, simple, length);
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(SignCases))]
    public async Task SignedByPosternVerifies(string message, string keyFile, bool simple, bool bodyLength)
    {
        var key = keyFile == "ed25519test.key" ? Ed25519Key() : RsaKey(keyFile);
        var signed = Sign(Message(message), key, new DkimSignerOptions { Simple = simple, BodyLengthTag = bodyLength });
        var dns = Dns(keyFile == "test2.private" ? "test2.txt" : "test.txt");
        var results = await new DkimVerifier(dns, Clock).VerifyAsync(signed);
        // test2.message arrives with a gmail.com signature of its own, which cannot verify here.
        var ours = Assert.Single(results, r => r.Domain == "example.com");
        Assert.True(ours.Result == AuthResult.Pass, ours.ToResInfo());
    }

    [Theory]
    [InlineData("test.private", false)]
    [InlineData("test.private", true)]
    [InlineData("ed25519test.key", false)]
    public async Task AppendingToTheBodyFails(string keyFile, bool simple)
    {
        var key = keyFile == "ed25519test.key" ? Ed25519Key() : RsaKey();
        var signed = Sign(Message("test.message"), key, new DkimSignerOptions { Simple = simple });
        var result = Assert.Single(await new DkimVerifier(Dns(), Clock).VerifyAsync((byte[])[.. signed, .. "foo"u8]));
        Assert.Equal(AuthResult.Fail, result.Result);
        Assert.Contains("body hash", result.Reason);
    }

    [Fact]
    public async Task AppendingToTheBodyPassesWithLengthTagAsDkimpyShows()
    {
        // What l= is for, and why Postern never signs with it: the signed part still verifies.
        var signed = Sign(Message("test.message"), RsaKey(), new DkimSignerOptions { BodyLengthTag = true });
        var result = Assert.Single(await new DkimVerifier(Dns(), Clock).VerifyAsync((byte[])[.. signed, .. "foo\r\n"u8]));
        Assert.Equal(AuthResult.Pass, result.Result);
    }

    [Fact]
    public async Task CuttingTheBodyShorterThanTheLengthTagFails()
    {
        var message = Message("test.message");
        var signed = Sign(message, RsaKey(), new DkimSignerOptions { BodyLengthTag = true });
        var result = Assert.Single(await new DkimVerifier(Dns(), Clock).VerifyAsync(signed.AsMemory(0, signed.Length - 8)));
        Assert.Equal(AuthResult.Fail, result.Result);
        Assert.Contains("body shorter than l=", result.Reason);
    }

    [Theory]
    [InlineData("badversion.txt", "not DKIM1")] // v=DKIM1: (a colon)
    [InlineData("badk.txt", "k=ed25519-sha256")] // not a key type
    [InlineData("test_bad.txt", "not an RSA public key")] // corrupted p=
    public async Task BrokenKeyRecordsFail(string record, string reason)
    {
        var signed = Sign(Message("test.message"), RsaKey(), DkimSignerOptions.Default);
        var result = Assert.Single(await new DkimVerifier(Dns(record), Clock).VerifyAsync(signed));
        Assert.Equal(AuthResult.PermError, result.Result);
        Assert.Contains(reason, result.Reason);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AFromAddedAfterSigningFails(bool onTop)
    {
        var signed = Encoding.ASCII.GetString(Sign(Message("test.message"), RsaKey(), DkimSignerOptions.Default));
        Assert.Contains("h=from:from:", signed);
        var forged = onTop
            ? signed.Insert(signed.IndexOf("\r\nReceived:", StringComparison.Ordinal) + 2, "From: mallory@example.org\r\n")
            : signed.Insert(signed.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 2, "From: mallory@example.org\r\n");
        var result = Assert.Single(await new DkimVerifier(Dns(), Clock).VerifyAsync(Encoding.ASCII.GetBytes(forged)));
        Assert.Equal(AuthResult.Fail, result.Result);
    }

    [Fact]
    public void AMessageWithoutFromIsNotSigned()
    {
        var signer = new DkimSigner(DkimKeyStore.From([RsaKey()]), Clock);
        var e = Assert.Throws<DkimSigningException>(() => signer.Sign(Message("test_nofrom.message")));
        Assert.Contains("no From", e.Message);
    }

    internal static byte[] Sign(byte[] message, DkimSigningKey key, DkimSignerOptions options)
    {
        var header = new DkimSigner(DkimKeyStore.Empty, Clock, options).Sign(message, [key]);
        Assert.StartsWith("DKIM-Signature: ", header);
        return [.. Encoding.ASCII.GetBytes(header), .. message];
    }
}
