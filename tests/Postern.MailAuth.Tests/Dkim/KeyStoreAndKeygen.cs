using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using Postern.MailAuth.Dkim;

namespace Postern.MailAuth.Tests.Dkim;

/// <summary>DATA/dkim/DOMAIN.SELECTOR.key (SPEC §3): generating (what `postern dkim keygen` does), loading, refusing.</summary>
public sealed class KeyStoreAndKeygen : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("postern-dkim-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(DkimKeyType.Rsa, 2)]
    [InlineData(DkimKeyType.Ed25519, 1)]
    public async Task AGeneratedKeysRecordParsesAndItsSignaturesVerify(DkimKeyType type, int strings)
    {
        var selector = DkimKeyStore.DefaultSelector(type, new DateTimeOffset(2026, 11, 28, 0, 0, 0, TimeSpan.Zero));
        var dir = Path.Combine(_dir, "dkim"); // keygen makes the folder, 0700
        var key = DkimKeyStore.Generate(dir, "Example.COM", selector, type);
        Assert.Equal(Path.Combine(dir, $"example.com.{selector}.key"), key.Path);
        Assert.StartsWith("-----BEGIN PRIVATE KEY-----", File.ReadAllText(key.Path!));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key.Path!));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(dir));
        }

        // What keygen prints: the name, and the value in strings of at most 255 octets.
        var txt = key.TxtRecord;
        Assert.Equal($"{selector}._domainkey.example.com", txt.Name);
        Assert.Equal(strings, txt.Strings.Count);
        Assert.All(txt.Strings, s => Assert.InRange(Encoding.ASCII.GetByteCount(s), 1, 255));
        Assert.StartsWith($"{txt.Name}. IN TXT \"v=DKIM1; k={(type == DkimKeyType.Rsa ? "rsa" : "ed25519")}; p=", txt.ZoneFileLine);
        var published = string.Concat(txt.Strings);
        var record = DkimKeyRecord.Parse(published, out var error);
        Assert.True(record is not null, error);
        Assert.Equal(type == DkimKeyType.Rsa ? 2048 : 256, record.KeyBits);

        // The server loads it and signs; a verifier that finds the published record passes the message.
        var store = DkimKeyStore.Load(dir);
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56));
        var message = "From: Postmaster <postmaster@example.com>\r\nTo: x@example.net\r\nSubject: keygen\r\n\r\nHello\r\n"u8.ToArray();
        var fields = new DkimSigner(store, clock).Sign(message);
        Assert.Contains($"s={selector};", fields);
        var dns = new DkimTestDns().Add(txt.Name, published);
        var result = Assert.Single(await new DkimVerifier(dns, clock).VerifyAsync(Encoding.ASCII.GetBytes(fields).Concat(message).ToArray()));
        Assert.True(result.Result == AuthResult.Pass, result.ToResInfo());
    }

    [Fact]
    public void AnExistingKeyIsNeverOverwritten()
    {
        var first = DkimKeyStore.Generate(_dir, "example.com", "s1", DkimKeyType.Ed25519);
        var before = File.ReadAllText(first.Path!);
        var e = Assert.Throws<DkimKeyStoreException>(() => DkimKeyStore.Generate(_dir, "example.com", "S1", DkimKeyType.Rsa));
        Assert.Contains("exists", e.Message);
        Assert.Equal(before, File.ReadAllText(first.Path!));
    }

    [Theory]
    [InlineData("example", "s")]
    [InlineData("exa mple.com", "s")]
    [InlineData("example.com", "a.b")]
    [InlineData("example.com", "../up")]
    [InlineData("example.com", "")]
    public void BadNamesAreRefused(string domain, string selector) =>
        Assert.Throws<DkimKeyStoreException>(() => DkimKeyStore.Generate(_dir, domain, selector, DkimKeyType.Ed25519));

    [Fact]
    public void LoadsEveryKeyOfEveryDomainInOtherToolsFormatsToo()
    {
        Write("example.com.test.key", File.ReadAllText(DkimSuiteFiles.Path("dkimpy", "test.private"))); // PKCS#1, as openssl genrsa / opendkim-genkey
        Write("example.com.ed.key", File.ReadAllText(DkimSuiteFiles.Path("dkimpy", "ed25519test.key"))); // dkimpy's bare seed
        Write("example.com.ed.txt", "not a key, ignored");
        Write("example.org.pkcs8.key", PemEncoding.WriteString("PRIVATE KEY", RSA.Create(1024).ExportPkcs8PrivateKey()));
        var store = DkimKeyStore.Load(_dir);
        Assert.Equal(["example.com/ed", "example.com/test", "example.org/pkcs8"], store.Keys.Select(k => $"{k.Domain}/{k.Selector}"));
        Assert.Equal([DkimKeyType.Ed25519, DkimKeyType.Rsa], store.KeysFor("EXAMPLE.com").Select(k => k.KeyType));
        Assert.Equal(2, store.KeysFor("lists.example.com").Count);
        Assert.Empty(store.KeysFor("com"));
        Assert.Empty(store.KeysFor("example.net"));
    }

    [Fact]
    public void NoFolderIsNoKeys() => Assert.Empty(DkimKeyStore.Load(Path.Combine(_dir, "absent")).Keys);

    [Theory]
    [InlineData("Example.com.s.key", "lower case")]
    [InlineData("example.com.S.key", "selector")]
    [InlineData("example.com.s.key", "chmod 600")]
    public void UnusableFilesAreNamed(string path, string reason)
    {
        Write(path, File.ReadAllText(DkimSuiteFiles.Path("dkimpy", "test.private")));
        if (reason == "chmod 600")
        {
            if (OperatingSystem.IsWindows())
            {
                return;
            }
            File.SetUnixFileMode(Path.Combine(_dir, path), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        }
        var e = Assert.Throws<DkimKeyStoreException>(() => DkimKeyStore.Load(_dir));
        Assert.Contains(reason, e.Message);
        Assert.Contains(Path.Combine(_dir, path), e.Message);
    }

    [Theory]
    [InlineData("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted")]
    [InlineData("garbage", "not a PEM key")]
    [InlineData("", "not a PEM key")]
    public void UnreadableKeys(string text, string reason) =>
        Assert.Contains(reason, Assert.Throws<FormatException>(() => DkimSigningKey.Parse("example.com", "s", text)).Message);

    [Fact]
    public void RsaKeysShorterThan1024BitsDoNotSign()
    {
        using var rsa = RSA.Create(512);
        var e = Assert.Throws<FormatException>(() => DkimSigningKey.Parse("example.com", "s", rsa.ExportRSAPrivateKeyPem()));
        Assert.Contains("at least 1024", e.Message);
    }

    [Fact]
    public void DefaultSelectors()
    {
        var at = new DateTimeOffset(2026, 3, 31, 23, 0, 0, TimeSpan.FromHours(-5));
        Assert.Equal("202604-rsa", DkimKeyStore.DefaultSelector(DkimKeyType.Rsa, at));
        Assert.Equal("202604-ed25519", DkimKeyStore.DefaultSelector(DkimKeyType.Ed25519, at));
    }

    private void Write(string relative, string text)
    {
        var path = Path.Combine(_dir, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}
