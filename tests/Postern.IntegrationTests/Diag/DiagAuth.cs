using System.Net;
using System.Text;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Diag;

/// <summary>
/// Issue 6, `postern diag auth`: against a real Postern, the right password logs in over STARTTLS
/// and over TLS at once, a wrong one is "credentials refused", and an address locked out after too
/// many failures is named as such even with the right password; Postfix (TLS, no AUTH) and a
/// server without TLS are named for what they lack, and the password never shows in what is printed.
/// </summary>
public sealed class DiagAuth
{
    private const string Alice = "alice@example.test";

    // The test servers' certificates are self-signed: --insecure lets the login be tried over them.
    private static Task<(int Exit, System.Text.Json.Nodes.JsonObject Report)> AuthAsync(string password, string port, params string[] more) =>
        DiagRun.JsonWithInputAsync(password + "\n", ["auth", "127.0.0.1", "--user", Alice, "--password-stdin", "--port", port, "--insecure", .. more]);

    [Fact]
    public async Task WithoutInsecureAnUntrustedCertificateFailsAndThePasswordIsNotSent()
    {
        await using var server = await TestServer.StartAsync();
        var (exit, report) = await DiagRun.JsonWithInputAsync(TestServer.AlicePassword + "\n",
            "auth", "127.0.0.1", "--user", Alice, "--password-stdin", "--port", $"{server.SubmissionPort}/submission");
        Assert.Equal(1, exit);
        var cert = DiagRun.Step(report, "cert");
        Assert.Equal(("fail", "cert_untrusted"), (DiagRun.Status(cert), DiagRun.Code(cert)));
        Assert.Contains("the password was not sent", (string)cert["cause"]!);
        Assert.Contains("--insecure", (string)cert["cause"]!);
        Assert.DoesNotContain(report["steps"]!.AsArray(), s => (string?)s!["id"] == "auth");
        Assert.DoesNotContain("event=auth", server.Logs);
    }

    [Fact]
    public async Task TheRightPasswordLogsInOverStartTlsAndOverTlsAtOnce()
    {
        await using var server = await TestServer.StartAsync();

        var (exit, report) = await AuthAsync(TestServer.AlicePassword, $"{server.SubmissionPort}/submission");
        Assert.Equal(0, exit);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "tcp")));
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "banner")));
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "ehlo")));
        Assert.Equal("starttls", (string)DiagRun.Step(report, "tls")["data"]!["mode"]!);
        Assert.Equal("cert_untrusted", DiagRun.Code(DiagRun.Step(report, "cert"))); // self-signed: a warning with --insecure
        Assert.Equal("warn", DiagRun.Status(DiagRun.Step(report, "cert")));
        var auth = DiagRun.Step(report, "auth");
        Assert.Equal("pass", DiagRun.Status(auth));
        Assert.Equal("PLAIN", (string)auth["data"]!["mechanism"]!);
        Assert.Contains("the account works", (string)auth["saw"]!);
        Assert.StartsWith("235 2.7.0", (string)auth["saw"]!);

        var (implicitExit, implicitReport) = await AuthAsync(TestServer.AlicePassword, $"{server.SubmissionsPort}/submissions");
        Assert.Equal(0, implicitExit);
        Assert.Equal("implicit", (string)DiagRun.Step(implicitReport, "tls")["data"]!["mode"]!);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(implicitReport, "auth")));
        await server.WaitForLogAsync("auth_ok", Alice);
    }

    [Fact]
    public async Task AWrongPasswordIsCredentialsRefusedAndNeverShown()
    {
        await using var server = await TestServer.StartAsync();
        const string wrong = "Wrong-Secret-4711";
        var (exit, report) = await AuthAsync(wrong, $"{server.SubmissionPort}/submission");
        Assert.Equal(1, exit);
        var auth = DiagRun.Step(report, "auth");
        Assert.Equal(("fail", "credentials_refused"), (DiagRun.Status(auth), DiagRun.Code(auth)));
        Assert.StartsWith("535 5.7.8", (string)auth["saw"]!);
        Assert.Contains("postern user passwd", (string)auth["fix"]!);

        var (_, text) = await DiagRun.TextWithInputAsync(wrong + "\n", "auth", "127.0.0.1", "--user", Alice, "--password-stdin", "--port", $"{server.SubmissionPort}/submission", "--insecure");
        Assert.Contains("FAIL  log in as alice@example.test (auth)", text);
        Assert.Contains("tried: AUTH PLAIN as alice@example.test (the password hidden)", text);
        foreach (var output in new[] { report.ToJsonString(), text })
        {
            Assert.DoesNotContain(wrong, output);
            Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes(wrong)), output);
            Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes($"\0{Alice}\0{wrong}")), output);
        }
    }

    [Fact]
    public async Task AnAddressLockedOutAfterFailuresIsNamedEvenWithTheRightPassword()
    {
        await using var server = await TestServer.StartAsync(o => o.Accounts.MaxAuthFailures = 2);
        var port = $"{server.SubmissionPort}/submission";
        for (var i = 0; i < 2; i++)
        {
            var (_, failed) = await AuthAsync("not-the-password", port);
            Assert.Equal("credentials_refused", DiagRun.Code(DiagRun.Step(failed, "auth")));
        }
        var (exit, report) = await AuthAsync(TestServer.AlicePassword, port);
        Assert.Equal(1, exit);
        var auth = DiagRun.Step(report, "auth");
        Assert.Equal(("fail", "auth_locked_out"), (DiagRun.Status(auth), DiagRun.Code(auth)));
        Assert.StartsWith("454 4.7.0 Too many failed authentications from your address", (string)auth["saw"]!);
        Assert.Contains("postern bans release", (string)auth["fix"]!);
        Assert.Equal(454, (int)auth["data"]!["reply_code"]!);
    }

    [Fact]
    public async Task PostfixWithTlsButNoAuthIsNamed()
    {
        await using var postfix = await PostfixPeer.StartAsync("127.0.0.31", "pf.test");
        var (exit, report) = await DiagRun.JsonWithInputAsync("secret\n", "auth", "127.0.0.31", "--user", "someone@pf.test", "--password-stdin", "--port", $"{postfix.EndPoint.Port}/submission", "--insecure");
        Assert.Equal(1, exit);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "tls")));
        Assert.Equal("cert_name_mismatch", DiagRun.Code(DiagRun.Step(report, "cert"))); // CN=mx.pf.test, asked as 127.0.0.31
        var auth = DiagRun.Step(report, "auth");
        Assert.Equal(("fail", "auth_not_offered"), (DiagRun.Status(auth), DiagRun.Code(auth)));
        Assert.Contains("smtpd_sasl_auth_enable", (string)auth["fix"]!);
    }

    [Fact]
    public async Task AServerWithoutTlsIsNamedAndGetsNoPassword()
    {
        using var plain = PlainSmtpStandIn.Start();
        var (exit, report) = await AuthAsync("never-sent-1", $"{plain.Port}/submission");
        Assert.Equal(1, exit);
        Assert.Equal("auth_without_tls", DiagRun.Code(DiagRun.Step(report, "ehlo")));
        var tls = DiagRun.Step(report, "tls");
        Assert.Equal(("fail", "starttls_missing"), (DiagRun.Status(tls), DiagRun.Code(tls)));
        Assert.Contains("never sends a password without TLS", (string)tls["cause"]!);
        Assert.DoesNotContain(report["steps"]!.AsArray(), s => (string)s!["id"]! == "auth");
        await Task.Delay(100); // the stand-in records the QUIT
        Assert.DoesNotContain(plain.Received, l => l.StartsWith("AUTH", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task ARefusedPortIsAConnectFailure()
    {
        var port = Infrastructure.Ports.Free(IPAddress.Loopback);
        var (exit, report) = await AuthAsync("whatever", $"{port}");
        Assert.Equal(1, exit);
        Assert.Equal("port_refused", DiagRun.Code(DiagRun.Step(report, "tcp")));
        Assert.Equal(2, report["steps"]!.AsArray().Count); // resolve, tcp
    }

    [Theory]
    [InlineData("x\n", "auth")]
    [InlineData("x\n", "auth", "127.0.0.1", "--password-stdin")]
    [InlineData("x\n", "auth", "127.0.0.1", "--user", "a@b.example")]
    [InlineData("x\n", "auth", "127.0.0.1", "--user", "a@b.example", "--password", "x")]
    [InlineData("x\n", "auth", "127.0.0.1", "--user", "a@b.example", "--password-stdin", "--port", "0")]
    [InlineData("x\n", "auth", "127.0.0.1", "--user", "a@b.example", "--password-stdin", "--port", "587/imap")]
    [InlineData("", "auth", "127.0.0.1", "--user", "a@b.example", "--password-stdin", "--port", "1")]
    public async Task UsageErrorsExit2(string stdin, params string[] args) =>
        Assert.Equal(2, (await DiagRun.TextWithInputAsync(stdin, args)).Exit);
}
