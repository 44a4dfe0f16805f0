using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Postern.IntegrationTests.Cli;
using Postern.IntegrationTests.Infrastructure;
using Postern.MailAuth.Dkim;

namespace Postern.IntegrationTests.Diag;

/// <summary>
/// Issue 6, `postern diag self`: a running Postern (TestServer) described by a postern.json, its
/// names and records served by NSD on loopback, checked from its own configuration: a healthy one
/// passes, outbound port 25 that never answers is named port_blocked with the smarthost advice, a
/// smarthost replaces port 25, and a broken one has each of its faults named.
/// </summary>
public sealed class DiagSelf
{
    private static Dictionary<string, string?> Zones(DkimSigningKey key) => new()
    {
        ["example.test"] = DnsServer.Zone("example.test", $"""
            @       IN MX  10 mx.example.test.
            mx      IN A   127.0.0.1
            @       IN TXT "v=spf1 mx -all"
            _dmarc  IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.test"
            {key.TxtRecord.ZoneFileLine}
            """),
        ["0.0.127.in-addr.arpa"] = DnsServer.Zone("0.0.127.in-addr.arpa", """
            1  IN PTR mx.example.test.
            """),
    };

    /// <summary>A postern.json describing the running server: its data, its listeners' real ports, the test DNS.</summary>
    private static PosternCli ConfigFor(TestServer server, DnsServer dns, Action<Dictionary<string, object>>? change = null) =>
        PosternCli.WithConfig(server.DataDir, c =>
        {
            c["Hostname"] = "mx.example.test";
            c["Listeners"] = new object[]
            {
                new { Name = "mx", Endpoint = $"127.0.0.1:{server.MxPort}", Role = "mx" },
                new { Name = "submission", Endpoint = $"127.0.0.1:{server.SubmissionPort}", Role = "submission" },
                new { Name = "submissions", Endpoint = $"127.0.0.1:{server.SubmissionsPort}", Role = "submissions" },
            };
            c["Dns"] = new { Servers = new[] { dns.Server } };
            c["Delivery"] = new { BindAddresses = new[] { "127.0.0.1" } };
            change?.Invoke(c);
        });

    private static DkimSigningKey KeyFor(TestServer server) =>
        DkimKeyStore.Generate(Path.Combine(server.DataDir, DkimKeyStore.FolderName), "example.test", "s1", DkimKeyType.Ed25519);

    [Fact]
    public async Task AHealthyServerPassesEveryCheck()
    {
        await using var server = await TestServer.StartAsync();
        using var dns = await DnsServer.StartAsync(Zones(KeyFor(server)));
        using var cli = ConfigFor(server, dns);
        var (exit, report) = await DiagRun.JsonAsync("self", "--config", cli.ConfigFile, "--probe", $"127.0.0.1:{server.MxPort}");
        Assert.Equal(0, exit);
        Assert.Equal("self", (string)report["check"]!);
        var sending = DiagRun.Step(report, "sending_ip");
        Assert.Equal("Delivery.BindAddresses", (string)sending["data"]!["source"]!);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "hostname")));
        var ptr = DiagRun.Step(report, "ptr.127.0.0.1");
        Assert.Equal("pass", DiagRun.Status(ptr));
        Assert.Contains("forward-confirmed", (string)ptr["saw"]!);
        Assert.Equal("info", DiagRun.Status(DiagRun.Step(report, "localhost:domain")));
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "example.test:spf.record")));
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "example.test:spf.127.0.0.1")));
        var dkim = DiagRun.Step(report, "example.test:dkim.s1");
        Assert.Equal("pass", DiagRun.Status(dkim));
        Assert.True((bool)dkim["data"]!["matches_own_key"]!);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "example.test:dmarc")));
        var port25 = DiagRun.Step(report, "port25");
        Assert.Equal("pass", DiagRun.Status(port25));
        Assert.StartsWith("220", (string)port25["data"]!["greeting"]!);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "tls.certificate")));
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "tls.name")));
        // The certificate Tls.Generate makes is self-signed: fine on port 25, not for mail programs.
        var chain = DiagRun.Step(report, "tls.chain");
        Assert.Equal("tls_untrusted", DiagRun.Code(chain));
        Assert.True((bool)chain["data"]!["self_signed"]!);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "listener.mx")));
        Assert.Contains("220", (string)DiagRun.Step(report, "listener.submission")["saw"]!);
        Assert.Contains("220", (string)DiagRun.Step(report, "listener.submissions")["saw"]!);
        var queue = DiagRun.Step(report, "queue");
        Assert.Equal("pass", DiagRun.Status(queue));
        Assert.Equal(0, (int)queue["data"]!["messages"]!);
        Assert.Equal(1, (int)report["summary"]!["warn"]!);
    }

    [Fact]
    public async Task Port25ThatNeverAnswersIsBlockedAndTheSmarthostIsAdvised()
    {
        await using var server = await TestServer.StartAsync();
        using var dns = await DnsServer.StartAsync(Zones(KeyFor(server)));
        using var cli = ConfigFor(server, dns);
        using var silent = await FullAcceptQueue.StartAsync();
        var (exit, report) = await DiagRun.JsonAsync("self", "--config", cli.ConfigFile, "--probe", $"127.0.0.1:{silent.Port}", "--timeout", "1");
        Assert.Equal(1, exit);
        var port25 = DiagRun.Step(report, "port25");
        Assert.Equal("fail", DiagRun.Status(port25));
        Assert.Equal("port25_blocked", DiagRun.Code(port25));
        Assert.Equal("timeout", (string)port25["data"]!["failure"]!);
        Assert.Contains("Relay.Smarthost", (string)port25["fix"]!);
    }

    [Fact]
    public async Task WithASmarthostPort25IsNotNeededAndTheSmarthostIsTried()
    {
        await using var server = await TestServer.StartAsync();
        using var dns = await DnsServer.StartAsync(Zones(KeyFor(server)));
        using var cli = ConfigFor(server, dns, c => c["Relay"] = new { Smarthost = new { Host = "127.0.0.1", Port = server.SubmissionsPort, Tls = "implicit" } });
        var (exit, report) = await DiagRun.JsonAsync("self", "--config", cli.ConfigFile);
        Assert.Equal(0, exit);
        Assert.Equal("info", DiagRun.Status(DiagRun.Step(report, "port25")));
        var smarthost = DiagRun.Step(report, "smarthost");
        Assert.Equal("pass", DiagRun.Status(smarthost));
        Assert.StartsWith("220", (string)smarthost["data"]!["greeting"]!);
    }

    [Fact]
    public async Task EachFaultOfABrokenServerIsNamed()
    {
        var unused = Ports.Free(IPAddress.Loopback);
        var closed = Ports.Free(IPAddress.Loopback);
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            ["broken.test"] = DnsServer.Zone("broken.test", """
                @   IN MX  10 mx.elsewhere.test.
                @   IN TXT "v=spf1 ip4:192.0.2.1 -all"
                """),
            ["0.0.127.in-addr.arpa"] = DnsServer.Zone("0.0.127.in-addr.arpa", """
                1  IN PTR mail.broken.test.
                """),
            ["signed.test"] = DnsServer.Zone("signed.test", ""),
        });
        using var cli = PosternCli.WithConfig(change: c =>
        {
            c["Hostname"] = "mail.broken.test";
            c["Domains"] = new[] { "broken.test" };
            c["Listeners"] = new[] { new { Name = "submission", Endpoint = $"127.0.0.1:{unused}", Role = "submission" } };
            c["Tls"] = new { CertificatePath = "cert.pem", KeyPath = "key.pem" }; // in DataDirectory
            c["Dns"] = new { Servers = new[] { dns.Server } };
        });
        // A certificate for another name that expires in five days.
        Directory.CreateDirectory(cli.DataDirectory);
        using (var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP256))
        {
            var request = new CertificateRequest("CN=other.test", ecdsa, HashAlgorithmName.SHA256);
            var san = new SubjectAlternativeNameBuilder();
            san.AddDnsName("other.test");
            request.CertificateExtensions.Add(san.Build());
            using var made = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-80), DateTimeOffset.UtcNow.AddDays(5));
            File.WriteAllText(Path.Combine(cli.DataDirectory, "cert.pem"), made.ExportCertificatePem());
            File.WriteAllText(Path.Combine(cli.DataDirectory, "key.pem"), ecdsa.ExportPkcs8PrivateKeyPem());
        }
        // A key of a domain that is not one of Domains (users send as it), never published.
        var unpublished = DkimKeyStore.Generate(Path.Combine(cli.DataDirectory, DkimKeyStore.FolderName), "signed.test", "s9", DkimKeyType.Ed25519);
        // A message that has waited ten hours for a destination that keeps deferring it.
        var stuck = QueueSeed.Message(cli.DataDirectory, "alice@broken.test", ["bob@remote.test"], DateTimeOffset.UtcNow.AddHours(-10),
            QueueSeed.Deferred(4, DateTimeOffset.UtcNow.AddHours(1), "451 4.7.1 greylisted, try later"));
        var (exit, report) = await DiagRun.JsonAsync("self", "--config", cli.ConfigFile, "--ip", "127.0.0.1", "--probe", $"127.0.0.1:{closed}", "--timeout", "1");
        Assert.Equal(1, exit);
        Assert.Equal("--ip", (string)DiagRun.Step(report, "sending_ip")["data"]!["source"]!);
        Assert.Equal("hostname_unresolved", DiagRun.Code(DiagRun.Step(report, "hostname")));
        Assert.Equal("ptr_mismatch", DiagRun.Code(DiagRun.Step(report, "ptr.127.0.0.1")));
        var spf = DiagRun.Step(report, "broken.test:spf.127.0.0.1");
        Assert.Equal("spf_fail", DiagRun.Code(spf));
        Assert.Contains("broken.test. IN TXT \"v=spf1 ip4:192.0.2.1 ip4:127.0.0.1 -all\"", (string)spf["fix"]!);
        var dkim = DiagRun.Step(report, "broken.test:dkim");
        Assert.Equal("dkim_no_key", DiagRun.Code(dkim));
        Assert.Contains("postern dkim keygen --domain broken.test", (string)dkim["fix"]!);
        Assert.Equal("dmarc_missing", DiagRun.Code(DiagRun.Step(report, "broken.test:dmarc")));
        var missing = DiagRun.Step(report, "signed.test:dkim.s9");
        Assert.Equal("dkim_missing", DiagRun.Code(missing));
        Assert.Contains(unpublished.TxtRecord.ZoneFileLine, (string)missing["fix"]!);
        var port25 = DiagRun.Step(report, "port25");
        Assert.Equal("port25_refused", DiagRun.Code(port25));
        var expiring = DiagRun.Step(report, "tls.certificate");
        Assert.Equal("tls_expiring", DiagRun.Code(expiring));
        Assert.Equal(4, (int)expiring["data"]!["days_left"]!);
        Assert.Equal("tls_name_mismatch", DiagRun.Code(DiagRun.Step(report, "tls.name")));
        Assert.Equal("listener_down", DiagRun.Code(DiagRun.Step(report, "listener.submission")));
        var queue = DiagRun.Step(report, "queue");
        Assert.Equal("queue_old", DiagRun.Code(queue));
        Assert.Equal(stuck.Value, (string)queue["data"]!["oldest_id"]!);
        Assert.Contains("greylisted", (string)queue["saw"]!);
        Assert.Contains($"postern queue show {stuck.Value}", (string)queue["fix"]!);
    }

    [Fact]
    public async Task WithoutAConfigurationThereIsNothingToCheck()
    {
        var (exit, report) = await DiagRun.JsonAsync("self");
        Assert.Equal(1, exit);
        var config = DiagRun.Step(report, "config");
        Assert.Equal("no_configuration", DiagRun.Code(config));
        Assert.Contains("--config", (string)config["fix"]!);
    }

    [Theory]
    [InlineData("self", "extra")]
    [InlineData("self", "--probe", "host:notaport")]
    [InlineData("self", "--ip", "300.1.1.1")]
    public async Task UsageErrorsExit2(params string[] args) =>
        Assert.Equal(2, (await DiagRun.TextAsync(args)).Exit);
}
