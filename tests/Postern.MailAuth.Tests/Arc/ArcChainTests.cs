using System.Text;
using Microsoft.Extensions.Time.Testing;
using MimeKit;
using Postern.MailAuth.Arc;
using Postern.MailAuth.Dkim;
using Postern.MailAuth.Tests.Dkim;

namespace Postern.MailAuth.Tests.Arc;

/// <summary>
/// ARC (RFC 8617): what <see cref="ArcSealer"/> adds when Postern forwards, and what
/// <see cref="ArcChainVerifier"/> makes of a chain: one set, two sets from two forwarders, a message
/// changed after sealing, a seal whose key is gone, no chain at all.
/// </summary>
public sealed class ArcChainTests
{
    private static readonly FakeTimeProvider Clock = new(new DateTimeOffset(2026, 11, 29, 2, 0, 0, TimeSpan.Zero));
    private static readonly DkimSigningKey Forwarder = DkimSigningKey.Generate("fwd.example", "arc1", DkimKeyType.Rsa).Key;
    private static readonly DkimSigningKey List = DkimSigningKey.Generate("lists.example", "arc2", DkimKeyType.Rsa).Key;
    private static readonly DkimSigningKey EdOnly = DkimSigningKey.Generate("ed.example", "arc3", DkimKeyType.Ed25519).Key;

    private const string Original =
        "From: Alice <alice@origin.example>\r\nTo: bob@fwd.example\r\nSubject: forwarded\r\n" +
        "Date: Sun, 29 Nov 2026 01:00:00 +0000\r\nMessage-ID: <arc-1@origin.example>\r\n\r\nHello,\r\nthrough a forwarder.\r\n";

    private const string ArrivalResults =
        "Authentication-Results: mx.fwd.example;\r\n\tspf=pass smtp.mailfrom=origin.example;\r\n\tdkim=none;\r\n\tdmarc=none header.from=origin.example\r\n";

    private static DkimTestDns Dns() => new DkimTestDns()
        .Add(Forwarder.TxtRecord.Name, Forwarder.TxtRecord.Value)
        .Add(List.TxtRecord.Name, List.TxtRecord.Value)
        .Add(EdOnly.TxtRecord.Name, EdOnly.TxtRecord.Value);

    private static ArcSealer Sealer() => new(() => DkimKeyStore.From([Forwarder, List, EdOnly]), Clock);

    private static MimeMessage Load(string text) => MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes(text)));

    private static string Text(MimeMessage m)
    {
        using var s = new MemoryStream();
        m.WriteTo(MimeFormat.Crlf, s);
        return Encoding.UTF8.GetString(s.ToArray());
    }

    [Fact]
    public async Task OneSetVerifies()
    {
        var message = Load(Original);
        Assert.True(await Sealer().SealAsync(message, "fwd.example", "mx.fwd.example", ArrivalResults));
        var text = Text(message);
        var flat = System.Text.RegularExpressions.Regex.Replace(text, "\r\n[ \t]+", " ");
        Assert.StartsWith("ARC-Seal: i=1; a=rsa-sha256; cv=none; d=fwd.example; s=arc1;", flat);
        Assert.True(flat.Contains("ARC-Message-Signature: i=1; a=rsa-sha256; d=fwd.example; s=arc1; c=relaxed/relaxed;", StringComparison.Ordinal), flat);
        Assert.Contains("ARC-Authentication-Results: i=1; mx.fwd.example;", flat);
        Assert.Contains("spf=pass smtp.mailfrom=origin.example", flat);

        var result = await new ArcChainVerifier(Dns()).VerifyAsync(Load(text));
        Assert.Equal(AuthResult.Pass, result.Result);
        Assert.Equal(1, result.Instances);
        Assert.Equal(["fwd.example"], result.Sealers);
        Assert.Equal("arc=pass reason=\"i=1 fwd.example\" smtp.remote-ip=192.0.2.7", result.ToResInfo("192.0.2.7"));
    }

    [Fact]
    public async Task ASecondForwarderExtendsThePassingChain()
    {
        var message = Load(Original);
        await Sealer().SealAsync(message, "fwd.example", "mx.fwd.example", ArrivalResults);
        var first = await new ArcChainVerifier(Dns()).VerifyAsync(Load(Text(message)));
        // The second hop records what it found, arc= included, and seals with cv= from it.
        var second = $"Authentication-Results: mx.lists.example;\r\n\tspf=pass smtp.mailfrom=fwd.example;\r\n\t{first.ToResInfo("192.0.2.7")}\r\n";
        Assert.True(await Sealer().SealAsync(message, "lists.example", "mx.lists.example", second));
        var text = Text(message);
        Assert.StartsWith("ARC-Seal: i=2; a=rsa-sha256; cv=pass; d=lists.example; s=arc2;", text);

        var result = await new ArcChainVerifier(Dns()).VerifyAsync(Load(text));
        Assert.Equal(AuthResult.Pass, result.Result);
        Assert.Equal(["fwd.example", "lists.example"], result.Sealers);
    }

    [Fact]
    public async Task WithSetsAlreadyThereButNoArcResultThereIsNoSeal()
    {
        var message = Load(Original);
        await Sealer().SealAsync(message, "fwd.example", "mx.fwd.example", ArrivalResults);
        var before = Text(message);
        // Without arc= in our results, the seal's cv= would be a guess: none is added.
        Assert.False(await Sealer().SealAsync(message, "lists.example", "mx.lists.example", ArrivalResults));
        Assert.Equal(before, Text(message));
    }

    [Theory]
    [InlineData("Hello,\r\nthrough a forwarder.\r\n", "Hello,\r\nthrough a forwarder, changed.\r\n")]
    [InlineData("Subject: forwarded", "Subject: [list] forwarded")]
    public async Task AChangeAfterSealingFails(string from, string to)
    {
        var message = Load(Original);
        await Sealer().SealAsync(message, "fwd.example", "mx.fwd.example", ArrivalResults);
        var changed = Text(message).Replace(from, to, StringComparison.Ordinal);
        var result = await new ArcChainVerifier(Dns()).VerifyAsync(Load(changed));
        Assert.Equal(AuthResult.Fail, result.Result);
        Assert.Contains("ARC-Message-Signature did not verify", result.Reason);
    }

    [Fact]
    public async Task AMissingKeyFails()
    {
        var message = Load(Original);
        await Sealer().SealAsync(message, "fwd.example", "mx.fwd.example", ArrivalResults);
        var result = await new ArcChainVerifier(new DkimTestDns()).VerifyAsync(Load(Text(message)));
        Assert.Equal(AuthResult.Fail, result.Result);
        Assert.StartsWith("arc=fail reason=", result.ToResInfo(null));
    }

    [Fact]
    public async Task AnEd25519KeySealsWhenItIsTheOnlyOne()
    {
        var message = Load(Original);
        Assert.True(await Sealer().SealAsync(message, "ed.example", "mx.ed.example", ArrivalResults));
        Assert.StartsWith("ARC-Seal: i=1; a=ed25519-sha256;", Text(message));
        Assert.Equal(AuthResult.Pass, (await new ArcChainVerifier(Dns()).VerifyAsync(Load(Text(message)))).Result);
    }

    [Fact]
    public async Task NoKeyNoSealAndNoChainIsNone()
    {
        var message = Load(Original);
        Assert.False(await Sealer().SealAsync(message, "other.example", "mx.other.example", ArrivalResults));
        Assert.Equal(Original, Text(message));
        Assert.Equal(ArcChainResult.None, await new ArcChainVerifier(Dns()).VerifyAsync(message));
        Assert.Equal("arc=none", ArcChainResult.None.ToResInfo(null));
    }
}
