using System.Text;
using Microsoft.Extensions.Time.Testing;
using Postern.MailAuth.Dkim;

namespace Postern.MailAuth.Tests.Dkim;

/// <summary>Postern's signatures, made from raw bytes, verify with MimeKit's canonicalization and checks.</summary>
public sealed class SignThenVerify
{
    private static readonly FakeTimeProvider Clock = new(new DateTimeOffset(2026, 11, 28, 20, 41, 51, TimeSpan.Zero));

    // Keys are slow to make; one of each serves every test of the class.
    internal static readonly DkimSigningKey Rsa = DkimSigningKey.Generate("example.com", "202611-rsa", DkimKeyType.Rsa).Key;
    internal static readonly DkimSigningKey Ed25519 = DkimSigningKey.Generate("example.com", "202611-ed25519", DkimKeyType.Ed25519).Key;

    private const string Headers =
        "Received: from client.example ([192.0.2.1])\r\n\tby mx.example.com (Postern) with ESMTPSA id D24FJ91C8YVF\r\n" +
        "From: Ärger <a@example.com>\r\n" +
        "To: b@example.net,\r\n  c@example.net\r\n" +
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=  and   spaces \r\n" +
        "Date: Sat, 28 Nov 2026 20:41:51 +0000\r\n" +
        "Message-ID: <1@example.com>\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Transfer-Encoding: 8bit\r\n";

    public static TheoryData<string, string> Bodies => new()
    {
        { "8-bit text", "Grüße aus Köln — 8-bit, not encoded.\r\nZeile  mit \t Leerraum \t\r\n" },
        { "trailing empty lines", "Hello.\r\n\r\n\r\n\r\n" },
        { "no trailing empty lines", "Hello.\r\n" },
        { "no final CRLF", "Hello." },
        { "empty body", "" },
        { "only empty lines", "\r\n\r\n" },
        { "MIME multipart", "--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b--  \r\nepilogue\r\n" },
    };

    [Theory]
    [MemberData(nameof(Bodies))]
    public async Task BothKeysPassRelaxedRelaxed(string name, string body)
    {
        var message = Encoding.UTF8.GetBytes(Headers + "\r\n" + body);
        var fields = Signer().Sign(message);
        Assert.Equal(2, Count(fields, "DKIM-Signature:"));
        Assert.Contains("c=relaxed/relaxed;", fields);
        var results = await Verifier().VerifyAsync(Encoding.ASCII.GetBytes(fields).Concat(message).ToArray());
        Assert.Equal(["ed25519-sha256", "rsa-sha256"], results.Select(r => r.Algorithm));
        Assert.All(results, r => Assert.True(r.Result == AuthResult.Pass, $"{name}: {r.ToResInfo()}"));
    }

    [Fact]
    public void HeaderListOversignsFromAndPresentSingletonsOnly()
    {
        var fields = Signer().Sign(Encoding.UTF8.GetBytes(Headers + "\r\nHi\r\n"));
        var h = Unfold(fields).Split("h=")[1].Split(';')[0];
        Assert.Equal("from:from:subject:subject:date:date:message-id:message-id:to:to:mime-version:mime-version:content-type:content-type:content-transfer-encoding:content-transfer-encoding", h);
        Assert.DoesNotContain("received", h);
        Assert.DoesNotContain("reply-to", h); // absent, so a list may still add one
    }

    [Fact]
    public void FieldsAreFoldedAndEndInCrlf()
    {
        var fields = Signer().Sign(Encoding.UTF8.GetBytes(Headers + "\r\nHi\r\n"));
        Assert.EndsWith("\r\n", fields);
        Assert.All(fields.Split("\r\n"), line => Assert.True(line.Length <= 78, line));
        Assert.DoesNotMatch("[^\r]\n|\r[^\n]", fields);
    }

    [Fact]
    public async Task SigningAStreamReadInTinyPiecesGivesTheSameFields()
    {
        var message = Encoding.UTF8.GetBytes(Headers + "\r\n" + "Body\r\n\r\n");
        var whole = Signer().Sign(message);
        var streamed = await Signer().SignAsync(new TrickleStream(message));
        Assert.Equal(whole, streamed);
    }

    [Fact]
    public async Task AnotherDomainOfTheMessageIsNotSignedWithOurKey()
    {
        var message = Encoding.UTF8.GetBytes(Headers.Replace("a@example.com", "a@elsewhere.example") + "\r\nHi\r\n");
        Assert.Equal("", Signer().Sign(message));
        // A subdomain signs with the parent's keys (DMARC relaxed alignment).
        var sub = Encoding.UTF8.GetBytes(Headers.Replace("a@example.com", "a@news.example.com") + "\r\nHi\r\n");
        var fields = Signer().Sign(sub);
        Assert.Contains("d=example.com;", fields);
        var results = await Verifier().VerifyAsync(Encoding.ASCII.GetBytes(fields).Concat(sub).ToArray());
        Assert.All(results, r => Assert.Equal(AuthResult.Pass, r.Result));
    }

    [Fact]
    public async Task SignsAndVerifiesFromTheStreamPosition()
    {
        // A spool file: the envelope line, then the message; both sides start where the stream stands.
        var message = Encoding.UTF8.GetBytes(Headers + "\r\nBody\r\n");
        var envelope = "POSTERN1 {\"Id\":\"D24FJ91C8YVF\"}\n"u8.ToArray();
        using var spooled = new MemoryStream([.. envelope, .. message]) { Position = envelope.Length };
        var fields = await Signer().SignAsync(spooled);
        Assert.Equal(Signer().Sign(message), fields);
        using var signed = new MemoryStream([.. envelope, .. Encoding.ASCII.GetBytes(fields), .. message]) { Position = envelope.Length };
        var results = await Verifier().VerifyAsync(signed);
        Assert.All(results, r => Assert.True(r.Result == AuthResult.Pass, r.ToResInfo()));
        Assert.Equal(2, results.Count);
    }

    [Fact]
    public void SeveralFromFieldsAreNotSigned()
    {
        var message = Encoding.UTF8.GetBytes("From: a@example.com\r\n" + Headers + "\r\nHi\r\n");
        Assert.Throws<DkimSigningException>(() => Signer().Sign(message));
    }

    [Fact]
    public async Task ChangingASignedHeaderFails()
    {
        var message = Encoding.UTF8.GetBytes(Headers + "\r\nHi\r\n");
        var signed = Encoding.UTF8.GetString([.. Encoding.ASCII.GetBytes(Signer().Sign(message)), .. message]).Replace("Message-ID: <1@", "Message-ID: <2@");
        var results = await Verifier().VerifyAsync(Encoding.UTF8.GetBytes(signed));
        Assert.All(results, r => Assert.Equal(AuthResult.Fail, r.Result));
        Assert.All(results, r => Assert.Equal("signature did not verify", r.Reason));
    }

    [Fact]
    public async Task ChangingUnsignedHeadersAndWhitespaceKeepsAPass()
    {
        var message = Encoding.UTF8.GetBytes(Headers + "\r\nHi  there\r\n");
        var signed = Encoding.UTF8.GetString([.. Encoding.ASCII.GetBytes(Signer().Sign(message)), .. message])
            .Replace("Received: from", "X-Spam: no\r\nReceived: from")
            .Replace("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=  and   spaces ", "Subject:\t=?utf-8?q?Gr=C3=BC=C3=9Fe?= and\r\n spaces")
            .Replace("Hi  there\r\n", "Hi there \r\n\r\n");
        var results = await Verifier().VerifyAsync(Encoding.UTF8.GetBytes(signed));
        Assert.All(results, r => Assert.True(r.Result == AuthResult.Pass, r.ToResInfo()));
    }

    // MimeKit re-serializes a parsed body without the whitespace after a boundary line; the verifier
    // hashes the octets as sent, so c=simple signatures of such messages still verify.
    [Theory]
    [InlineData("--b  \r\nContent-Type: text/plain\r\n\r\none\r\n--b--  \r\nepilogue\r\n")]
    [InlineData("preamble\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\nContent-Type: text/plain\r\n\r\ntwo  \r\n--b--")]
    [InlineData("--b\r\nContent-Type: text/plain\r\n\r\nno closing boundary\r\n")]
    public async Task SimpleBodyHashIsOfTheOctetsAsSent(string body)
    {
        var message = Encoding.UTF8.GetBytes("From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + body);
        var fields = Signer(new DkimSignerOptions { Simple = true }).Sign(message);
        var results = await Verifier().VerifyAsync(Encoding.ASCII.GetBytes(fields).Concat(message).ToArray());
        Assert.All(results, r => Assert.True(r.Result == AuthResult.Pass, r.ToResInfo()));
    }

    internal static DkimSigner Signer(DkimSignerOptions? options = null, TimeProvider? time = null) =>
        new(DkimKeyStore.From([Rsa, Ed25519]), time ?? Clock, options);

    internal static DkimVerifier Verifier(TimeProvider? time = null) =>
        new(new DkimTestDns().Add(Rsa.TxtRecord.Name, Rsa.TxtRecord.Value).Add(Ed25519.TxtRecord.Name, Ed25519.TxtRecord.Value), time ?? Clock);

    private static int Count(string s, string what) => s.Split(what).Length - 1;

    private static string Unfold(string s) => s.Replace("\r\n\t", " ").Replace(" ", "");

    /// <summary>Gives a byte or two per read, so the header block ends across reads.</summary>
    private sealed class TrickleStream(byte[] data) : MemoryStream(data)
    {
        private int _n;

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, 1 + (_n++ % 2))], cancellationToken);
    }
}
