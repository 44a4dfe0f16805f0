using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Storage;

namespace Postern.IntegrationTests.Cli;

/// <summary>
/// Issue 11 item 4: `config check` runs what `serve` meets at start, for the user the server runs
/// as: an OK from it means `serve` starts, and what would stop `serve` stops it first, every problem
/// on its own line naming its key. `serve` itself never ends with a stack trace for such a problem:
/// exit 2 and a line.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class ConfigCheckTellsTheTruth
{
    private static (string Cert, string Key) Pair(string folder, string name)
    {
        var cert = Path.Combine(folder, name + ".crt");
        var key = Path.Combine(folder, name + ".key");
        using var rsa = System.Security.Cryptography.RSA.Create(2048);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest($"CN={name}", rsa,
            System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
        using var c = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        File.WriteAllText(cert, c.ExportCertificatePem());
        File.WriteAllText(key, rsa.ExportPkcs8PrivateKeyPem());
        return (cert, key);
    }

    private static PosternCli WithTls(string cert, string key, string? data = null) => PosternCli.WithConfig(dataDirectory: data, change: c =>
        c["Tls"] = new Dictionary<string, string> { ["CertificatePath"] = cert, ["KeyPath"] = key });

    [Fact]
    public async Task AKeyThatIsNotTheCertificatesIsAnErrorOfTlsKeyPath()
    {
        var folder = TestServer.NewDataDir();
        var (cert, _) = Pair(folder, "one");
        var (_, otherKey) = Pair(folder, "two");
        using var cli = WithTls(cert, otherKey);
        var check = await cli.RunAsync("config", "check");
        Assert.True(check.ExitCode == 2, check.ToString());
        Assert.Equal("", check.Out);
        Assert.Equal($"postern: configuration error: Tls.KeyPath: the key in {otherKey} does not belong to the certificate in {cert} (subject CN=one); give the key the certificate was issued for", check.Err.Trim());

        // serve stops on the same problem, the same way: exit 2 and a line, not an unhandled exception.
        var serve = await cli.RunAsync("serve");
        Assert.True(serve.ExitCode == 2, serve.ToString());
        Assert.Contains("Tls.KeyPath: the key in", serve.Err, StringComparison.Ordinal);
        Assert.Single(serve.Err.Trim().Split('\n'));
    }

    [Fact]
    public async Task AKeyTheServersUserCannotReadIsNamedWithWhy()
    {
        var postern = SystemUsers.Postern;
        var data = SystemUsers.DataDirectoryOwnedBy(postern);
        var (cert, key) = Pair(Path.GetDirectoryName(data)!, "mail.example.test");
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite); // root's alone
        using var cli = WithTls(cert, key, data);
        var check = await cli.RunAsync("config", "check");
        Assert.True(check.ExitCode == 2, check.ToString());
        Assert.Contains($"Tls.KeyPath: the server's user cannot read it: postern cannot read {key} (mode 0600, owner root", check.Err, StringComparison.Ordinal);

        // Given to the server's group, as the docs say (chgrp postern KEY; chmod 0640 KEY): OK.
        FileOwner.Chown(key, 0, postern.Gid);
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var ok = await cli.RunAsync("config", "check");
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Contains("the server runs as postern", ok.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ADataDirectoryTheServersUserCannotWriteIsAnError()
    {
        var postern = SystemUsers.Postern;
        var data = SystemUsers.DataDirectoryOwnedBy(postern);
        File.SetUnixFileMode(data, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        using var cli = PosternCli.WithConfig(dataDirectory: data);
        var check = await cli.RunAsync("config", "check");
        Assert.True(check.ExitCode == 2, check.ToString());
        Assert.Contains($"DataDirectory: the server's user cannot write there: postern cannot write in {data} (mode 0500", check.Err, StringComparison.Ordinal);

        // serve: the same line and exit 2 (it used to end with an unhandled exception, exit 134).
        var serve = await cli.RunAsync("serve");
        Assert.True(serve.ExitCode == 2, serve.ToString());
        Assert.Equal($"postern: cannot start: DataDirectory: the server's user cannot write there: postern cannot write in {data} (mode 0500, owner postern, group {SystemUsers.Postern.Gid})", serve.Err.Trim());
    }

    [Fact]
    public async Task AnEndpointInUseIsAnErrorThatSaysWhoHoldsIt()
    {
        var port = Ports.Free(IPAddress.Loopback);
        using var holder = new TcpListener(IPAddress.Loopback, port);
        holder.Start();
        using var cli = PosternCli.WithConfig(change: c => c["Listeners"] = new[] { new Dictionary<string, string> { ["Endpoint"] = $"127.0.0.1:{port}" } });
        var check = await cli.RunAsync("config", "check");
        Assert.True(check.ExitCode == 2, check.ToString());
        var me = Process.GetCurrentProcess();
        Assert.Contains($"Listeners[0].Endpoint: 127.0.0.1:{port} is in use by pid {me.Id} (", check.Err, StringComparison.Ordinal);

        holder.Stop();
        var free = await cli.RunAsync("config", "check");
        Assert.True(free.ExitCode == 0, free.ToString());
    }

    [Fact]
    public async Task AWildcardHolderOfThePortCountsToo()
    {
        var port = Ports.Free(IPAddress.Any);
        using var holder = new TcpListener(IPAddress.Any, port);
        holder.Start();
        using var cli = PosternCli.WithConfig(change: c => c["Listeners"] = new[] { new Dictionary<string, string> { ["Endpoint"] = $"127.0.0.1:{port}" } });
        var check = await cli.RunAsync("config", "check");
        Assert.True(check.ExitCode == 2, check.ToString());
        Assert.Contains($"is in use by pid {Environment.ProcessId} (", check.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnOpenRelayIsAnErrorAndEveryProblemIsToldAtOnce()
    {
        using var cli = PosternCli.WithConfig(change: c =>
        {
            c["Relay"] = new Dictionary<string, string[]> { ["TrustedNetworks"] = ["0.0.0.0/0"] };
            c["Limits"] = new Dictionary<string, string> { ["MaxRecipients"] = "lots", ["MaxMesageSize"] = "1" };
        });
        var check = await cli.RunAsync("config", "check");
        Assert.True(check.ExitCode == 2, check.ToString());
        var lines = check.Err.Trim().Split('\n');
        Assert.Contains("postern: configuration error: Limits.MaxRecipients: 'lots' is not a whole number (up to 2147483647)", lines);
        Assert.Contains("postern: configuration error: Limits.MaxMesageSize: unknown key (did you mean Limits.MaxMessageSize?)", lines);
        Assert.DoesNotContain("Failed to convert", check.Err, StringComparison.Ordinal); // no binder message

        using var relay = PosternCli.WithConfig(change: c => c["Relay"] = new Dictionary<string, string[]> { ["TrustedNetworks"] = ["127.0.0.0/8", "::/0"] });
        var open = await relay.RunAsync("config", "check");
        Assert.True(open.ExitCode == 2, open.ToString());
        Assert.Contains("Relay.TrustedNetworks[1]: '::/0' is every address: anyone could relay through this server (an open relay)", open.Err, StringComparison.Ordinal);
    }
}
