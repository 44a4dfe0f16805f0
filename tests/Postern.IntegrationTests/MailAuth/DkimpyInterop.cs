using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.MailAuth.Dkim;
using Postern.MailAuth.Dns;

namespace Postern.IntegrationTests.MailAuth;

/// <summary>
/// Issue 5, an independent peer: Debian's dkimpy (python3-dkim) verifies what Postern signs, and
/// Postern verifies what dkimpy signs, and an ARC set dkimpy seals, all looking the keys up in a
/// real DNS server on loopback (NSD; dkimpy through dnspython pointed at it).
/// </summary>
public sealed class DkimpyInterop
{
    private const string Python = "/usr/bin/python3"; // Debian's, where python3-dkim is installed

    private const string Message =
        "From: Alice <alice@interop.test>\r\nTo: bob@example.org\r\nSubject: interop\r\n" +
        "Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <interop-1@interop.test>\r\n\r\n" +
        "Hello,  with  spaces \r\n\r\nand a last line\r\n";

    // dnsfunc for dkimpy: TXT records from the given server (ip port name) via dnspython.
    private const string Verify = """
        import sys, dkim, dns.resolver
        ip, port = sys.argv[1], int(sys.argv[2])
        r = dns.resolver.Resolver(configure=False); r.nameservers = [ip]; r.port = port
        def txt(name, timeout=5):
            name = name.decode() if isinstance(name, bytes) else name
            return b"".join(b"".join(a.strings) for a in r.resolve(name.rstrip("."), "TXT"))
        ok = dkim.verify(sys.stdin.buffer.read(), dnsfunc=txt)
        print("verified" if ok else "failed")
        """;

    private const string Sign = """
        import sys, dkim
        key = open(sys.argv[1], "rb").read()
        msg = sys.stdin.buffer.read()
        sig = dkim.sign(msg, b"py", b"interop.test", key, canonicalize=(b"relaxed", b"simple"), include_headers=[b"from", b"to", b"subject", b"date"])
        sys.stdout.buffer.write(sig + msg)
        """;

    [Fact]
    public async Task DkimpyVerifiesWhatPosternSigns()
    {
        var keys = Path.Combine(TestServer.NewDataDir(), "dkim");
        var rsa = DkimKeyStore.Generate(keys, "interop.test", "rsa1", DkimKeyType.Rsa);
        var ed = DkimKeyStore.Generate(keys, "interop.test", "ed1", DkimKeyType.Ed25519);
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            ["interop.test"] = DnsServer.Zone("interop.test", Record(rsa, "rsa1") + "\n" + Record(ed, "ed1")),
        });
        var signer = new DkimSigner(DkimKeyStore.Load(keys), TimeProvider.System);
        var signatures = signer.Sign(Encoding.ASCII.GetBytes(Message));
        // One signature per key: check each alone, so that one good one cannot hide a bad one.
        foreach (var one in SplitFields(signatures))
        {
            var result = await Peers.RunAsync(Python, ["-c", Verify, dns.EndPoint.Address.ToString(), dns.EndPoint.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)], one + Message);
            Assert.True(result.Stdout.Trim() == "verified", $"{one}\n{result.All}");
        }
        Assert.Equal(2, SplitFields(signatures).Count);
    }

    [Fact]
    public async Task PosternVerifiesWhatDkimpySigns()
    {
        var dir = TestServer.NewDataDir();
        var (key, pem) = DkimSigningKey.Generate("interop.test", "py", DkimKeyType.Rsa);
        var keyFile = Path.Combine(dir, "py.pem");
        // dkimpy reads a PKCS#1 or PKCS#8 PEM RSA key.
        await File.WriteAllTextAsync(keyFile, pem);
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            ["interop.test"] = DnsServer.Zone("interop.test", Record(key, "py")),
        });
        var signed = await Peers.RunAsync(Python, ["-c", Sign, keyFile], Message);
        Assert.True(signed.ExitCode == 0 && signed.Stdout.StartsWith("DKIM-Signature:", StringComparison.Ordinal), signed.All);
        var verifier = new DkimVerifier(new DnsClientMailAuthDns([new DnsClient.NameServer(dns.EndPoint)], TimeSpan.FromSeconds(2)), TimeProvider.System);
        var results = await verifier.VerifyAsync(Encoding.ASCII.GetBytes(signed.Stdout.Replace("\r\n", "\n", StringComparison.Ordinal).Replace("\n", "\r\n", StringComparison.Ordinal)));
        var only = Assert.Single(results);
        Assert.Equal(Postern.MailAuth.AuthResult.Pass, only.Result);
        Assert.Equal("interop.test", only.Domain);
        // And a change in the body breaks it.
        var tampered = await verifier.VerifyAsync(Encoding.ASCII.GetBytes(signed.Stdout.Replace("and a last line", "and a LAST line", StringComparison.Ordinal)));
        Assert.Equal(Postern.MailAuth.AuthResult.Fail, Assert.Single(tampered).Result);
    }

    // dkimpy's ARC sealer: one set as mx.interop.test, over the Authentication-Results it finds.
    private const string ArcSign = """
        import sys, dkim
        key = open(sys.argv[1], "rb").read()
        msg = sys.stdin.buffer.read()
        fields = dkim.arc_sign(msg, b"arc", b"interop.test", key, b"mx.interop.test", include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        sys.stdout.buffer.write(b"".join(fields) + msg)
        """;

    [Fact]
    public async Task PosternVerifiesAnArcSetDkimpySealed()
    {
        var dir = TestServer.NewDataDir();
        var (key, pem) = DkimSigningKey.Generate("interop.test", "arc", DkimKeyType.Rsa);
        var keyFile = Path.Combine(dir, "arc.pem");
        await File.WriteAllTextAsync(keyFile, pem);
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            ["interop.test"] = DnsServer.Zone("interop.test", Record(key, "arc")),
        });
        var received = "Authentication-Results: mx.interop.test; spf=pass smtp.mailfrom=interop.test\r\n" + Message;
        var sealedByPy = await Peers.RunAsync(Python, ["-c", ArcSign, keyFile], received);
        Assert.True(sealedByPy.ExitCode == 0 && sealedByPy.Stdout.StartsWith("ARC-Seal:", StringComparison.Ordinal), sealedByPy.All);
        var verifier = new Postern.MailAuth.Arc.ArcChainVerifier(new DnsClientMailAuthDns([new DnsClient.NameServer(dns.EndPoint)], TimeSpan.FromSeconds(2)));
        var text = sealedByPy.Stdout.Replace("\r\n", "\n", StringComparison.Ordinal).Replace("\n", "\r\n", StringComparison.Ordinal);
        var result = await verifier.VerifyAsync(new MemoryStream(Encoding.ASCII.GetBytes(text)));
        Assert.True(result.Result == Postern.MailAuth.AuthResult.Pass, result.ToResInfo(null) + "\n" + text);
        Assert.Equal(["interop.test"], result.Sealers);
        var tampered = await verifier.VerifyAsync(new MemoryStream(Encoding.ASCII.GetBytes(text.Replace("and a last line", "and a LAST line", StringComparison.Ordinal))));
        Assert.Equal(Postern.MailAuth.AuthResult.Fail, tampered.Result);
    }

    private static string Record(DkimSigningKey key, string selector) =>
        key.TxtRecord.ZoneFileLine.Replace($"{selector}._domainkey.interop.test.", $"{selector}._domainkey", StringComparison.Ordinal);

    private static List<string> SplitFields(string fields)
    {
        var list = new List<string>();
        foreach (var line in fields.Split("\r\n", StringSplitOptions.RemoveEmptyEntries))
        {
            if (line[0] is ' ' or '\t')
            {
                list[^1] += line + "\r\n";
            }
            else
            {
                list.Add(line + "\r\n");
            }
        }
        return list;
    }
}
