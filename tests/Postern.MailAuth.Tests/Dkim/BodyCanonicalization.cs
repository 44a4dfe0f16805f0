using System.Security.Cryptography;
using System.Text;
using Postern.MailAuth.Dkim;

namespace Postern.MailAuth.Tests.Dkim;

/// <summary>Body canonicalization (RFC 6376 §3.4.3, §3.4.4) against published body hashes.</summary>
public sealed class BodyCanonicalization
{
    [Theory]
    // RFC 6376 Appendix A's message (dkimpy rfc6376.msg): its bh= in rfc6376.signed.msg (simple) and in RFC 8463 A.3 (relaxed).
    [InlineData(false, "4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=")]
    [InlineData(true, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=")]
    public void Rfc6376AppendixA(bool relaxed, string bh)
    {
        var message = DkimSuiteFiles.Crlf(File.ReadAllBytes(DkimSuiteFiles.Path("dkimpy", "rfc6376.msg")));
        var body = message.AsSpan(DkimHeaders.BodyOffset(message));
        Assert.Equal(bh, Hash(body, relaxed, chunk: 3));
    }

    [Theory]
    // The hashes of "\r\n" and of "": RFC 6376 §3.4.3 (simple: an empty body is one CRLF), §3.4.4 (relaxed: empty).
    [InlineData("", false, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=")]
    [InlineData("", true, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")]
    [InlineData("\r\n\r\n", false, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=")]
    [InlineData(" \t \r\n\r\n", true, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")]
    public void EmptyBodies(string body, bool relaxed, string bh) => Assert.Equal(bh, Hash(Encoding.ASCII.GetBytes(body), relaxed, chunk: 1));

    [Theory]
    [InlineData("a  b \t\r\n\r\n \r\nc\r\n\r\n", true, "a b\r\n\r\n\r\nc\r\n")] // WSP runs to one SP, none at line ends; only trailing empty lines go
    [InlineData(" lead\r\n", true, " lead\r\n")] // leading WSP becomes one SP, not nothing
    [InlineData("a  b \r\n\r\n", false, "a  b \r\n")]
    [InlineData("no final CRLF", false, "no final CRLF\r\n")]
    [InlineData("no final CRLF \t", true, "no final CRLF\r\n")]
    [InlineData("bare\nLF\n", false, "bare\r\nLF\r\n")]
    [InlineData("8-bit \u00e4\u00f6 \r\n", true, "8-bit \u00e4\u00f6\r\n")]
    public void Canonical(string body, bool relaxed, string canonical)
    {
        var expected = Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)));
        Assert.Equal(expected, Hash(Encoding.UTF8.GetBytes(body), relaxed, chunk: 1));
        Assert.Equal(expected, Hash(Encoding.UTF8.GetBytes(body), relaxed, chunk: 4096));
    }

    [Fact]
    public void TheLimitCutsTheHashNotTheLength()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var body = new DkimBodyCanonicalizer(relaxed: false, hash, limit: 5);
        body.Append("Hello, world\r\n"u8);
        body.Finish();
        Assert.Equal(14, body.Length);
        Assert.Equal(SHA256.HashData("Hello"u8), hash.GetHashAndReset());
    }

    private static string Hash(ReadOnlySpan<byte> body, bool relaxed, int chunk)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var c = new DkimBodyCanonicalizer(relaxed, hash);
        for (var i = 0; i < body.Length; i += chunk)
        {
            c.Append(body.Slice(i, Math.Min(chunk, body.Length - i)));
        }
        c.Finish();
        return Convert.ToBase64String(hash.GetHashAndReset());
    }
}
