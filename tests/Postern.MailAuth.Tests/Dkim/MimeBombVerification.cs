using System.Text;
using Microsoft.Extensions.Time.Testing;
using MimeKit;
using Postern.MailAuth.Arc;
using Postern.MailAuth.Dkim;

namespace Postern.MailAuth.Tests.Dkim;

/// <summary>
/// Issue 12, the MIME bomb: a 7 MB message of a million empty MIME parts. DKIM and ARC verify it
/// with memory bounded by its header section, never a MIME tree (on main a DKIM check of it
/// allocated about a gigabyte). The bound is on the bytes allocated by the verifying thread, a
/// deterministic count: every read is of a MemoryStream and the test DNS answers at once, so the
/// whole verification runs on this thread.
/// </summary>
public sealed class MimeBombVerification
{
    private static readonly FakeTimeProvider Clock = new(new DateTimeOffset(2026, 11, 28, 20, 41, 51, TimeSpan.Zero));

    // 4 MiB for a 7 MB message (it takes about 1.1 MB): read buffers, the header section, the results. Parsing the parts
    // costs hundreds of bytes each, so a verifier that builds the tree passes this by far.
    private const long AllocationBound = 4L << 20;

    private const string Head =
        "From: a@example.com\r\nTo: b@example.net\r\nSubject: bomb\r\nDate: Sat, 28 Nov 2026 20:41:51 +0000\r\n" +
        "Message-ID: <bomb@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n";

    /// <summary>The header, then <paramref name="parts"/> empty parts ("--b" CRLF CRLF, 7 octets each).</summary>
    internal static byte[] Bomb(int parts, string extraHeader = "")
    {
        var s = new MemoryStream();
        s.Write(Encoding.ASCII.GetBytes(extraHeader + Head + "\r\n"));
        var part = "--b\r\n\r\n"u8.ToArray();
        for (var i = 0; i < parts; i++)
        {
            s.Write(part);
        }
        s.Write("--b--\r\n"u8);
        return s.ToArray();
    }

    [Fact]
    public async Task DkimVerifyOfASignedBombAllocatesLittle()
    {
        var message = Bomb(1_000_000);
        var signed = Encoding.ASCII.GetBytes(SignThenVerify.Signer().Sign(message)).Concat(message).ToArray();
        var verifier = SignThenVerify.Verifier();
        using var stream = new MemoryStream(signed, writable: false);

        var before = GC.GetAllocatedBytesForCurrentThread();
        var verifying = verifier.VerifyAsync(stream);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(verifying.IsCompleted, "the verification ran on another thread: the count would miss it");
        var results = await verifying;

        Assert.Equal(2, results.Count);
        Assert.All(results, r => Assert.True(r.Result == AuthResult.Pass, r.ToResInfo()));
        Assert.True(allocated < AllocationBound, $"verifying a {signed.Length}-octet bomb allocated {allocated} bytes");
    }

    [Fact]
    public async Task ArcVerifyOfABombAllocatesLittle()
    {
        // A seal made over a small message, then put on the bomb: the chain fails (its body hash), but
        // the whole verification ran: seals checked, the body hashed to its end.
        var key = DkimSigningKey.Generate("fwd.example", "arc1", DkimKeyType.Rsa).Key;
        var small = MimeMessage.Load(new MemoryStream(Bomb(3)));
        Assert.True(await new ArcSealer(() => DkimKeyStore.From([key]), Clock).SealAsync(small, "fwd.example", "mx.fwd.example", null));
        var arcHeaders = string.Concat(small.Headers.Where(h => h.Field.StartsWith("ARC-", StringComparison.Ordinal)).Select(h => h.Field + ":" + Encoding.ASCII.GetString(h.RawValue)));
        var message = Bomb(1_000_000, arcHeaders);
        var verifier = new ArcChainVerifier(new DkimTestDns().Add(key.TxtRecord.Name, key.TxtRecord.Value));
        using var stream = new MemoryStream(message, writable: false);

        var before = GC.GetAllocatedBytesForCurrentThread();
        var verifying = verifier.VerifyAsync(stream);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(verifying.IsCompleted, "the verification ran on another thread: the count would miss it");
        var result = await verifying;

        Assert.Equal(AuthResult.Fail, result.Result);
        Assert.Contains("ARC-Message-Signature", result.Reason);
        Assert.True(allocated < AllocationBound, $"verifying a {message.Length}-octet bomb with an ARC set allocated {allocated} bytes");
    }

    [Fact]
    public async Task ASealedMultipartMessagePassesFromAStream()
    {
        var key = DkimSigningKey.Generate("fwd.example", "arc1", DkimKeyType.Rsa).Key;
        var message = MimeMessage.Load(new MemoryStream(Bomb(1000)));
        Assert.True(await new ArcSealer(() => DkimKeyStore.From([key]), Clock).SealAsync(message, "fwd.example", "mx.fwd.example", null));
        using var bytes = new MemoryStream();
        await message.WriteToAsync(MimeFormat.Crlf, bytes);
        bytes.Position = 0;
        var result = await new ArcChainVerifier(new DkimTestDns().Add(key.TxtRecord.Name, key.TxtRecord.Value)).VerifyAsync(bytes);
        Assert.Equal(AuthResult.Pass, result.Result);
    }

    [Fact]
    public async Task AHeaderSectionPastTheBoundIsAPermErrorNotAParse()
    {
        var header = new StringBuilder();
        for (var i = 0; header.Length <= DkimSigner.MaxHeaderBytes; i++)
        {
            header.Append("X-Filler-").Append(i).Append(": ").Append('x', 100).Append("\r\n");
        }
        var message = Encoding.ASCII.GetBytes(header + Head + "\r\nbody\r\n");
        var results = await SignThenVerify.Verifier().VerifyAsync(message);
        Assert.Equal(AuthResult.PermError, Assert.Single(results).Result);
        Assert.Equal(AuthResult.Fail, (await new ArcChainVerifier(new DkimTestDns()).VerifyAsync(new MemoryStream(message))).Result);
    }
}
