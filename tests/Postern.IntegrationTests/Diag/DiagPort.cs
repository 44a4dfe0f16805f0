using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Diag;

/// <summary>
/// Issue 6, `postern diag port`: Postern's three listeners and a private Postfix answer, each with
/// its greeting, EHLO, TLS and certificate judged; a port nobody listens on is refused, a listener
/// whose accept queue is full never answers (and port 25 timing out while 587 answers gives the
/// smarthost advice), a reset and a busy server are told apart, and expired, soon expiring and
/// wrong-name certificates are named.
/// </summary>
public sealed class DiagPort
{
    private static string Ports(TestServer s) => $"{s.MxPort}/mx,{s.SubmissionPort}/submission,{s.SubmissionsPort}/submissions";

    [Fact]
    public async Task PosternsListenersAnswerEachInItsOwnWay()
    {
        await using var server = await TestServer.StartAsync();
        var (exit, report) = await DiagRun.JsonAsync("port", "127.0.0.1", "--ports", Ports(server));
        var (mx, sub, subs) = (server.MxPort, server.SubmissionPort, server.SubmissionsPort);

        Assert.Equal("info", DiagRun.Status(DiagRun.Step(report, "resolve")));
        foreach (var port in new[] { mx, sub, subs })
        {
            Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"tcp.{port}")));
            Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"banner.{port}")));
            Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"tls.{port}")));
            Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"cert_expiry.{port}")));
            Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"cert_name.{port}"))); // the --dev certificate names 127.0.0.1
            Assert.StartsWith("220 ", (string)DiagRun.Step(report, $"banner.{port}")["saw"]!);
            Assert.Matches("^TLSv1\\.[23]$", (string)DiagRun.Step(report, $"tls.{port}")["data"]!["version"]!);
        }

        // Port 25-like: STARTTLS offered, no AUTH before TLS, AUTH after it; the self-signed
        // certificate is a warning only, since senders encrypt opportunistically.
        var ehlo = DiagRun.Step(report, $"ehlo.{mx}");
        Assert.Equal("pass", DiagRun.Status(ehlo));
        Assert.True((bool)ehlo["data"]!["starttls"]!);
        Assert.Null(ehlo["data"]!["auth_mechanisms"]);
        Assert.Equal("starttls", (string)DiagRun.Step(report, $"tls.{mx}")["data"]!["mode"]!);
        var mxCert = DiagRun.Step(report, $"cert.{mx}");
        Assert.Equal(("warn", "cert_untrusted"), (DiagRun.Status(mxCert), DiagRun.Code(mxCert)));
        Assert.Contains("self-signed", (string)mxCert["saw"]!);
        Assert.Equal("CN=mx.example.test", (string)mxCert["data"]!["chain"]![0]!["subject"]!);
        Assert.Contains("PLAIN", DiagRun.Step(report, $"ehlo_tls.{mx}")["data"]!["auth_mechanisms"]!.AsArray().Select(m => (string)m!));

        // The client ports: the same certificate is a failure, since mail clients refuse it.
        var subCert = DiagRun.Step(report, $"cert.{sub}");
        Assert.Equal(("fail", "cert_untrusted"), (DiagRun.Status(subCert), DiagRun.Code(subCert)));
        Assert.Contains("Tls.CertificatePath", (string)subCert["fix"]!);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"ehlo_tls.{sub}")));
        Assert.Equal("implicit", (string)DiagRun.Step(report, $"tls.{subs}")["data"]!["mode"]!);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"ehlo.{subs}")));
        Assert.Equal("fail", DiagRun.Status(DiagRun.Step(report, $"cert.{subs}")));

        Assert.Equal(1, exit);
        Assert.DoesNotContain(report["steps"]!.AsArray(), s => ((string)s!["id"]!).StartsWith("port25", StringComparison.Ordinal));
    }

    [Fact]
    public async Task PostfixAsAPeerFoundByName()
    {
        await using var postfix = await PostfixPeer.StartAsync("127.0.0.31", "pf.test");
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            ["pf.test"] = DnsServer.Zone("pf.test", "mx IN A 127.0.0.31\n"),
        });
        var port = postfix.EndPoint.Port;
        var (exit, report) = await DiagRun.JsonAsync("port", "mx.pf.test", "--ports", $"{port}/mx", "--dns", dns.Server);

        var resolve = DiagRun.Step(report, "resolve");
        Assert.Equal("pass", DiagRun.Status(resolve));
        Assert.Equal("127.0.0.31", (string)resolve["data"]!["addresses"]![0]!);
        Assert.Equal("220 mx.pf.test ESMTP", (string)DiagRun.Step(report, $"banner.{port}")["saw"]!);
        var ehlo = DiagRun.Step(report, $"ehlo.{port}");
        Assert.Equal("pass", DiagRun.Status(ehlo));
        Assert.Contains("STARTTLS", ehlo["data"]!["capabilities"]!.AsArray().Select(c => (string)c!));
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"tls.{port}")));
        // openssl req -subj /CN=mx.pf.test: no subjectAltName, the common name is the name.
        var name = DiagRun.Step(report, $"cert_name.{port}");
        Assert.Equal("pass", DiagRun.Status(name));
        Assert.Equal("mx.pf.test", (string)name["data"]!["names"]![0]!);
        Assert.Equal("cert_untrusted", DiagRun.Code(DiagRun.Step(report, $"cert.{port}")));
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"ehlo_tls.{port}")));
        Assert.Equal(0, exit); // on an mx port a self-signed certificate is a warning
    }

    [Fact]
    public async Task APortNobodyListensOnIsRefused()
    {
        var port = Infrastructure.Ports.Free(IPAddress.Loopback);
        var (exit, report) = await DiagRun.JsonAsync("port", "127.0.0.1", "--ports", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(1, exit);
        var tcp = DiagRun.Step(report, $"tcp.{port}");
        Assert.Equal(("fail", "port_refused"), (DiagRun.Status(tcp), DiagRun.Code(tcp)));
        Assert.Equal("refused", (string)tcp["data"]!["failure"]!);
        Assert.Contains("Listeners[].Endpoint", (string)tcp["fix"]!);
        Assert.Single(report["steps"]!.AsArray(), s => ((string)s!["id"]!).EndsWith($".{port}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task APortThatNeverAnswersTimesOutAndPort25BlockedGivesTheSmarthostAdvice()
    {
        await using var server = await TestServer.StartAsync();
        using var blackhole = await FullAcceptQueue.StartAsync();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (exit, report) = await DiagRun.JsonAsync("port", "127.0.0.1", "--ports", $"{blackhole.Port}/mx,{server.SubmissionPort}/submission", "--timeout", "1");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"took {clock.Elapsed}");
        Assert.Equal(1, exit);

        var tcp = DiagRun.Step(report, $"tcp.{blackhole.Port}");
        Assert.Equal(("fail", "port_timeout"), (DiagRun.Status(tcp), DiagRun.Code(tcp)));
        Assert.Equal("timeout", (string)tcp["data"]!["failure"]!);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"tcp.{server.SubmissionPort}")));

        var blocked = DiagRun.Step(report, "port25.blocked");
        Assert.Equal(("fail", "port25_blocked"), (DiagRun.Status(blocked), DiagRun.Code(blocked)));
        Assert.Contains("Relay.Smarthost", (string)blocked["fix"]!);
        Assert.Equal(blackhole.Port, (int)blocked["data"]!["timed_out_ports"]![0]!);
        Assert.Equal(server.SubmissionPort, (int)blocked["data"]!["answered_ports"]![0]!);

        // Alone, a timeout is only a timeout: nothing to compare it with.
        var (_, alone) = await DiagRun.JsonAsync("port", "127.0.0.1", "--ports", $"{blackhole.Port}/mx", "--timeout", "1");
        Assert.Equal("port_timeout", DiagRun.Code(DiagRun.Step(alone, $"tcp.{blackhole.Port}")));
        Assert.DoesNotContain(alone["steps"]!.AsArray(), s => (string)s!["id"]! == "port25.blocked");
    }

    [Fact]
    public async Task AResetAfterTheConnectIsNotARefusal()
    {
        using var resetter = ResettingListener.Start();
        var (exit, report) = await DiagRun.JsonAsync("port", "127.0.0.1", "--ports", $"{resetter.Port}/mx", "--timeout", "2");
        Assert.Equal(1, exit);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"tcp.{resetter.Port}")));
        var banner = DiagRun.Step(report, $"banner.{resetter.Port}");
        Assert.Equal(("fail", "port_reset"), (DiagRun.Status(banner), DiagRun.Code(banner)));
        Assert.Equal("reset", (string)banner["data"]!["failure"]!);
    }

    [Fact]
    public async Task ABusyServersGreetingIsExplained()
    {
        await using var server = await TestServer.StartAsync(o => o.Limits.MaxConnectionsPerIp = 1);
        await using var holder = await RawSmtp.OpenAsync(server.MxPort);
        var (exit, report) = await DiagRun.JsonAsync("port", "127.0.0.1", "--ports", $"{server.MxPort}/mx");
        Assert.Equal(1, exit);
        var banner = DiagRun.Step(report, $"banner.{server.MxPort}");
        Assert.Equal(("fail", "banner_busy"), (DiagRun.Status(banner), DiagRun.Code(banner)));
        Assert.StartsWith("421 4.7.0 Too many connections from your address", (string)banner["saw"]!);
        Assert.Contains("Limits.MaxConnectionsPerIp", (string)banner["fix"]!);
        Assert.Equal(421, (int)banner["data"]!["reply_code"]!);
    }

    [Fact]
    public async Task AnExpiredCertificateIsNamed()
    {
        var now = DateTimeOffset.UtcNow;
        await using var server = await TestCertificates.StartWithAsync(now.AddDays(-90), now.AddDays(-3), "mx.example.test", ip: true);
        var (exit, report) = await DiagRun.JsonAsync("port", "127.0.0.1", "--ports", Ports(server));
        Assert.Equal(1, exit);
        foreach (var port in new[] { server.MxPort, server.SubmissionPort, server.SubmissionsPort })
        {
            var expiry = DiagRun.Step(report, $"cert_expiry.{port}");
            Assert.Equal(("fail", "cert_expired"), (DiagRun.Status(expiry), DiagRun.Code(expiry)));
            Assert.Contains("3 days ago", (string)expiry["saw"]!);
            Assert.Contains("Tls.CertificatePath", (string)expiry["fix"]!);
            Assert.True((int)expiry["data"]!["days_left"]! < 0);
            Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"cert_name.{port}")));
        }
    }

    [Fact]
    public async Task ACertificateThatExpiresSoonIsAWarning()
    {
        var now = DateTimeOffset.UtcNow;
        await using var server = await TestCertificates.StartWithAsync(now.AddDays(-80), now.AddDays(5).AddHours(1), "mx.example.test", ip: true);
        var (_, report) = await DiagRun.JsonAsync("port", "127.0.0.1", "--ports", $"{server.MxPort}/mx");
        var expiry = DiagRun.Step(report, $"cert_expiry.{server.MxPort}");
        Assert.Equal(("warn", "cert_expiring"), (DiagRun.Status(expiry), DiagRun.Code(expiry)));
        Assert.Contains("in 5 days", (string)expiry["saw"]!);
    }

    [Fact]
    public async Task ACertificateForAnotherNameIsNamed()
    {
        var now = DateTimeOffset.UtcNow;
        await using var server = await TestCertificates.StartWithAsync(now.AddDays(-1), now.AddDays(60), "wrong.example", ip: false);
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            ["example.test"] = DnsServer.Zone("example.test", "mx IN A 127.0.0.1"),
        });
        var (exit, report) = await DiagRun.JsonAsync("port", "mx.example.test", "--ports", Ports(server), "--dns", dns.Server);
        Assert.Equal(1, exit);
        foreach (var port in new[] { server.MxPort, server.SubmissionPort, server.SubmissionsPort })
        {
            var name = DiagRun.Step(report, $"cert_name.{port}");
            // Clients refuse a wrong name; senders to an MX mostly deliver anyway.
            Assert.Equal((port == server.MxPort ? "warn" : "fail", "cert_name_mismatch"), (DiagRun.Status(name), DiagRun.Code(name)));
            Assert.Contains("wrong.example", (string)name["saw"]!);
            Assert.Equal("wrong.example", (string)name["data"]!["names"]![0]!);
            Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"cert_expiry.{port}")));
        }

        // Asked by address, there is no name to compare.
        var (_, byAddress) = await DiagRun.JsonAsync("port", "127.0.0.1", "--ports", $"{server.MxPort}/mx");
        Assert.Equal("info", DiagRun.Status(DiagRun.Step(byAddress, $"cert_name.{server.MxPort}")));
    }

    [Fact]
    public async Task AServerWithoutStartTlsThatOffersAuthInClearIsWarnedAbout()
    {
        using var plain = PlainSmtpStandIn.Start();
        var (exit, report) = await DiagRun.JsonAsync("port", "127.0.0.1", "--ports", $"{plain.Port}/submission");
        var ehlo = DiagRun.Step(report, $"ehlo.{plain.Port}");
        Assert.Equal(("warn", "auth_without_tls"), (DiagRun.Status(ehlo), DiagRun.Code(ehlo)));
        var tls = DiagRun.Step(report, $"tls.{plain.Port}");
        Assert.Equal(("warn", "starttls_missing"), (DiagRun.Status(tls), DiagRun.Code(tls)));
        Assert.DoesNotContain(report["steps"]!.AsArray(), s => ((string)s!["id"]!).StartsWith("cert", StringComparison.Ordinal));
        Assert.Equal(0, exit);
    }

    [Fact]
    public async Task TheTextSaysWhatWasTriedAndSeen()
    {
        var port = Infrastructure.Ports.Free(IPAddress.Loopback);
        var (exit, text) = await DiagRun.TextAsync("port", "127.0.0.1", "--ports", $"{port}/mx");
        Assert.Equal(1, exit);
        Assert.Contains($"postern diag port 127.0.0.1", text);
        Assert.Contains($"INFO  address of 127.0.0.1 (resolve)", text);
        Assert.Contains($"FAIL  TCP connect to 127.0.0.1:{port} (tcp.{port})", text);
        Assert.Contains($"tried: a TCP connection to 127.0.0.1:{port} (mx)", text);
        Assert.Contains("saw:   127.0.0.1:", text);
        Assert.Contains("connection refused", text);
        Assert.Contains("cause: the host answered, but nothing listens", text);
        Assert.Contains("fix:   if it is your server", text);
        Assert.Contains("problems found: 0 passed, 0 warnings, 1 failed", text);
        Assert.DoesNotContain("\u001b[", text);
    }

    [Theory]
    [InlineData("port")]
    [InlineData("port", "a.example", "b.example")]
    [InlineData("port", "mx.example:25")]
    [InlineData("port", "127.0.0.1", "--ports", "0")]
    [InlineData("port", "127.0.0.1", "--ports", "70000")]
    [InlineData("port", "127.0.0.1", "--ports", "25,smtp")]
    [InlineData("port", "127.0.0.1", "--ports", "2525/web")]
    [InlineData("port", "127.0.0.1", "--ports", ",")]
    [InlineData("port", "127.0.0.1", "--port", "25")]
    public async Task UsageErrorsExit2(params string[] args) =>
        Assert.Equal(2, (await DiagRun.TextAsync(args)).Exit);
}
/// <summary>
/// Accepts each connection and resets it (SO_LINGER 0) a moment later: connected, then cut off. (Reset
/// at once, the RST can reach the client before its connect is seen complete: a reset at connect.)
/// </summary>
internal sealed class ResettingListener : IDisposable
{
    private readonly Socket _listener;

    private ResettingListener(Socket listener) => _listener = listener;

    public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

    public static ResettingListener Start()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(8);
        var r = new ResettingListener(listener);
        _ = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var c = await listener.AcceptAsync();
                    _ = Task.Delay(200).ContinueWith(_ =>
                    {
                        c.LingerState = new LingerOption(true, 0);
                        c.Close();
                    }, TaskScheduler.Default);
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // stopped
            }
        });
        return r;
    }

    public void Dispose() => _listener.Dispose();
}

/// <summary>
/// A stand-in for an old or misconfigured server that none of the real peers here can be made
/// into: plain SMTP without STARTTLS, announcing AUTH in clear. It records every line it receives,
/// so a test can show that no password was sent to it.
/// </summary>
internal sealed class PlainSmtpStandIn : IDisposable
{
    private readonly TcpListener _listener;
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _received = new();

    private PlainSmtpStandIn(TcpListener listener) => _listener = listener;

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public IReadOnlyCollection<string> Received => _received;

    public static PlainSmtpStandIn Start()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var s = new PlainSmtpStandIn(listener);
        _ = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var client = await listener.AcceptTcpClientAsync();
                    _ = s.ServeAsync(client);
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // stopped
            }
        });
        return s;
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                using var reader = new StreamReader(stream, Encoding.ASCII);
                async Task Say(string text) => await stream.WriteAsync(Encoding.ASCII.GetBytes(text));
                await Say("220 plain.example ESMTP\r\n");
                while (await reader.ReadLineAsync() is { } line)
                {
                    _received.Enqueue(line);
                    if (line.StartsWith("EHLO", StringComparison.OrdinalIgnoreCase))
                    {
                        await Say("250-plain.example\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 1000000\r\n");
                    }
                    else if (line.StartsWith("QUIT", StringComparison.OrdinalIgnoreCase))
                    {
                        await Say("221 2.0.0 Bye\r\n");
                        return;
                    }
                    else
                    {
                        await Say("502 5.5.1 Not here\r\n");
                    }
                }
            }
            catch (IOException)
            {
            }
        }
    }

    public void Dispose() => _listener.Stop();
}

/// <summary>Self-signed certificates with chosen names and dates, as PEM files a TestServer serves (Tls.CertificatePath, Tls.KeyPath).</summary>
internal static class TestCertificates
{
    public static Task<TestServer> StartWithAsync(DateTimeOffset notBefore, DateTimeOffset notAfter, string name, bool ip, Action<Postern.Server.Configuration.PosternOptions>? configure = null)
    {
        var dir = TestServer.NewDataDir();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(name);
        if (ip)
        {
            san.AddIpAddress(IPAddress.Loopback);
        }
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using var cert = request.CreateSelfSigned(notBefore, notAfter);
        File.WriteAllText(Path.Combine(dir, "cert.pem"), cert.ExportCertificatePem());
        File.WriteAllText(Path.Combine(dir, "key.pem"), key.ExportPkcs8PrivateKeyPem());
        return TestServer.StartAsync(o =>
        {
            o.Tls = new Postern.Server.Configuration.TlsOptions { CertificatePath = "cert.pem", KeyPath = "key.pem" };
            configure?.Invoke(o);
        }, dataDir: dir);
    }
}
