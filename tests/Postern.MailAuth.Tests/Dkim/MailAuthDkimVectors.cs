using System.Text;
using Microsoft.Extensions.Time.Testing;
using Postern.MailAuth.Dkim;

namespace Postern.MailAuth.Tests.Dkim;

/// <summary>
/// dkim/mail-auth/001–006 (stalwartlabs/mail-auth): DNS lines, a blank line, the message. Every
/// signature must verify as pass at the upstream clock, 1667843664 (005 has an x= after it).
/// </summary>
public sealed class MailAuthDkimVectors
{
    private static readonly DateTimeOffset UpstreamClock = DateTimeOffset.FromUnixTimeSeconds(1667843664);

    public static TheoryData<string, int> Files => new()
    {
        { "001.txt", 2 }, // RFC 8463 Appendix A: ed25519-sha256 and rsa-sha256
        { "002.txt", 1 }, // simple/simple; a bare PKCS#1 RSA key, no k=
        { "003.txt", 2 }, // IETF list message, relaxed/simple, two identical signatures
        { "004.txt", 1 }, // facebookmail.com: key with t=s; h=sha256
        { "005.txt", 1 }, // topicbox.com: c=relaxed (body simple), x=
        { "006.txt", 1 }, // github.com: l=
    };

    [Theory]
    [MemberData(nameof(Files))]
    public async Task EverySignaturePasses(string file, int signatures)
    {
        var (dns, message) = Read(file);
        var results = await new DkimVerifier(dns, new FakeTimeProvider(UpstreamClock)).VerifyAsync(message);
        Assert.Equal(signatures, results.Count);
        Assert.All(results, r => Assert.True(r.Result == AuthResult.Pass, $"{file}: {r.ToResInfo()}"));
    }

    [Fact]
    public async Task ExpiresAfterItsXTag()
    {
        var (dns, message) = Read("005.txt");
        var results = await new DkimVerifier(dns, new FakeTimeProvider(DateTimeOffset.FromUnixTimeSeconds(1667930064 + 3600))).VerifyAsync(message);
        Assert.Equal(AuthResult.PermError, Assert.Single(results).Result);
        Assert.Contains("expired", results[0].Reason);
    }

    internal static (DkimTestDns Dns, byte[] Message) Read(string file)
    {
        var bytes = File.ReadAllBytes(DkimSuiteFiles.Path("mail-auth", file));
        var split = bytes.AsSpan().IndexOf("\n\n"u8);
        var dns = new DkimTestDns();
        foreach (var line in Encoding.UTF8.GetString(bytes, 0, split).Split('\n'))
        {
            var space = line.IndexOf(' ');
            dns.Add(line[..space], line[(space + 1)..]);
        }
        return (dns, DkimSuiteFiles.Crlf(bytes.AsSpan(split + 2)));
    }
}
