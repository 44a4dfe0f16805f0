using System.Globalization;
using System.Net;
using Postern.IntegrationTests.Cli;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Diag;

/// <summary>
/// Issue 6, `postern diag deliver`: a delivery walked without sending, against real servers found by
/// MX in NSD on loopback. A Postern peer (mx.example.test) accepts alice and refuses an unknown user
/// (550 5.1.1, explained); a private Postfix (127.0.0.37) greylists by its check_recipient_access
/// map; a null MX, a domain that does not exist, a domain without MX, DNS that does not answer and
/// MX hosts where nothing listens each give their own diagnosis. The port comes from the
/// configuration's Delivery.RemotePort, as the server's own delivery takes it (or --port).
/// </summary>
public sealed class DiagDeliver
{
    private const string PostfixAddress = "127.0.0.37";
    private const string BindAddress = "127.0.0.39";

    private static Task<DnsServer> ZonesAsync() => DnsServer.StartAsync(new Dictionary<string, string?>
    {
        ["example.test"] = DnsServer.Zone("example.test", """
            @        IN MX 10 mx.example.test.
            mx       IN A   127.0.0.1
            bare     IN A   127.0.0.1
            """),
        ["pf.test"] = DnsServer.Zone("pf.test", $"""
            @        IN MX 10 mx.pf.test.
            mx       IN A   {PostfixAddress}
            """),
        ["nomail.test"] = DnsServer.Zone("nomail.test", """
            @        IN MX 0 .
            """),
        ["dead.test"] = DnsServer.Zone("dead.test", """
            @        IN MX 10 a.dead.test.
            @        IN MX 20 b.dead.test.
            @        IN MX 30 c.dead.test.
            a        IN A   127.0.0.46
            b        IN A   127.0.0.47
            """),
        ["broken.test"] = null, // SERVFAIL
    });

    /// <summary>A configuration that delivers to <paramref name="port"/> (Delivery.RemotePort) from 127.0.0.39 (Delivery.BindAddresses).</summary>
    private static PosternCli Config(int port) => PosternCli.WithConfig(change: c =>
    {
        c["Hostname"] = "client.example.org";
        c["Domains"] = new[] { "client.example.org" };
        c["Delivery"] = new Dictionary<string, object> { ["RemotePort"] = port, ["BindAddresses"] = new[] { BindAddress } };
    });

    private static Task<TestServer> PeerAsync() => TestServer.StartAsync();

    [Fact]
    public async Task AnExistingUserIsAcceptedOverTlsAndNothingIsSent()
    {
        using var dns = await ZonesAsync();
        await using var peer = await PeerAsync();
        using var cli = Config(peer.MxPort);
        var (exit, report) = await DiagRun.JsonAsync("deliver", "alice@example.test", "--config", cli.ConfigFile, "--dns", dns.Server);
        Assert.Equal(0, exit);

        Assert.Equal("10 mx.example.test", (string)DiagRun.Step(report, "mx")["saw"]!);
        Assert.Contains("10 mx.example.test (127.0.0.1)", (string)DiagRun.Step(report, "mx.hosts")["saw"]!, StringComparison.Ordinal);
        var connect = DiagRun.Step(report, "connect.127.0.0.1");
        Assert.Equal("pass", DiagRun.Status(connect));
        Assert.Equal(peer.MxPort, (int)connect["data"]!["port"]!);
        Assert.Equal(BindAddress, (string)connect["data"]!["from"]!); // Delivery.BindAddresses
        Assert.Contains("ESMTP Postern", (string)connect["saw"]!, StringComparison.Ordinal);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "ehlo")));
        var tls = DiagRun.Step(report, "starttls");
        Assert.Equal("pass", DiagRun.Status(tls));
        Assert.StartsWith("TLSv1.", (string)tls["data"]!["tls_version"]!, StringComparison.Ordinal);
        Assert.Equal("MAIL FROM:<> (the null sender, as bounces use; --from to give another)", (string)DiagRun.Step(report, "mail")["tried"]!);
        var rcpt = DiagRun.Step(report, "rcpt");
        Assert.Equal("pass", DiagRun.Status(rcpt));
        Assert.Equal(250, (int)rcpt["data"]!["reply_code"]!);

        // Never DATA: the session ended without a message, nothing reached alice's mailbox.
        await peer.WaitForLogAsync("event=disconnect", "helo=client.example.org", "messages=0");
        Assert.DoesNotContain(peer.LogLines, l => l.Contains("event=accepted", StringComparison.Ordinal));
        Assert.Empty(peer.Delivered("alice@example.test"));
    }

    [Fact]
    public async Task AnUnknownUserIsExplained()
    {
        using var dns = await ZonesAsync();
        await using var peer = await PeerAsync();
        using var cli = Config(peer.MxPort);
        var (exit, report) = await DiagRun.JsonAsync("deliver", "nobody@example.test", "--from", "alice@client.example.org", "--config", cli.ConfigFile, "--dns", dns.Server);
        Assert.Equal(1, exit);
        Assert.Equal("MAIL FROM:<alice@client.example.org>", (string)DiagRun.Step(report, "mail")["tried"]!);
        var rcpt = DiagRun.Step(report, "rcpt");
        Assert.Equal("fail", DiagRun.Status(rcpt));
        Assert.Equal("unknown_user", DiagRun.Code(rcpt));
        Assert.Contains("550 5.1.1", (string)rcpt["saw"]!, StringComparison.Ordinal);
        Assert.Equal("5.1.1", (string)rcpt["data"]!["enhanced_code"]!);
        Assert.Equal("unknown_user", (string)rcpt["data"]!["diagnosis"]!);
        Assert.Contains("does not exist", (string)rcpt["cause"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GreylistingIsAWarningThatExplainsTheRetry()
    {
        using var dns = await ZonesAsync();
        await using var postfix = await PostfixPeer.StartAsync(PostfixAddress, "pf.test", "later");
        await postfix.SetRecipientAccessAsync(("later@pf.test", "450 4.7.1 greylisted, try again later"));
        using var cli = Config(25);
        // --port over Delivery.RemotePort.
        var (exit, report) = await DiagRun.JsonAsync("deliver", "later@pf.test", "--port", postfix.EndPoint.Port.ToString(CultureInfo.InvariantCulture),
            "--config", cli.ConfigFile, "--dns", dns.Server);
        Assert.Equal(0, exit); // a warning: the mail would get through on a retry
        var rcpt = DiagRun.Step(report, "rcpt");
        Assert.Equal("warn", DiagRun.Status(rcpt));
        Assert.Equal("greylisted", DiagRun.Code(rcpt));
        Assert.Equal(450, (int)rcpt["data"]!["reply_code"]!);
        Assert.Equal("4.7.1", (string)rcpt["data"]!["enhanced_code"]!);
        Assert.Contains("Delivery.RetryInitialDelay", (string)rcpt["fix"]!, StringComparison.Ordinal);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "starttls")));
        await postfix.WaitForLogAsync("NOQUEUE: reject: RCPT from", "greylisted, try again later");
    }

    [Fact]
    public async Task ANullMxSaysTheDomainTakesNoMail()
    {
        using var dns = await ZonesAsync();
        var (exit, report) = await DiagRun.JsonAsync("deliver", "someone@nomail.test", "--dns", dns.Server);
        Assert.Equal(1, exit);
        var mx = DiagRun.Step(report, "mx");
        Assert.Equal("mx_null", DiagRun.Code(mx));
        Assert.True((bool)mx["data"]!["null_mx"]!);
        Assert.DoesNotContain(report["steps"]!.AsArray(), s => ((string)s!["id"]!).StartsWith("connect", StringComparison.Ordinal));
    }

    [Fact]
    public async Task NoServerAnsweringIsTheVerdictAfterEveryAddress()
    {
        using var dns = await ZonesAsync();
        var port = Ports.FreeOnAll(IPAddress.Parse("127.0.0.46"), IPAddress.Parse("127.0.0.47"));
        var (exit, report) = await DiagRun.JsonAsync("deliver", "someone@dead.test", "--port", port.ToString(CultureInfo.InvariantCulture), "--dns", dns.Server, "--timeout", "1");
        Assert.Equal(1, exit);
        // c.dead.test has no address: skipped, and said so.
        var hosts = DiagRun.Step(report, "mx.hosts");
        Assert.Equal("mx_host_no_address", DiagRun.Code(hosts));
        Assert.Contains("c.dead.test", (string)hosts["saw"]!, StringComparison.Ordinal);
        Assert.Equal("port_refused", DiagRun.Code(DiagRun.Step(report, "connect.127.0.0.46")));
        Assert.Equal("port_refused", DiagRun.Code(DiagRun.Step(report, "connect.127.0.0.47")));
        var verdict = DiagRun.Step(report, "connect");
        Assert.Equal("fail", DiagRun.Status(verdict));
        Assert.Equal("no_server_answers", DiagRun.Code(verdict));
        Assert.Contains("refused", (string)verdict["cause"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoMxFallsBackToTheDomainsAddressAndARelayRefusalIsExplained()
    {
        using var dns = await ZonesAsync();
        await using var peer = await PeerAsync();
        using var cli = Config(peer.MxPort);
        var (exit, report) = await DiagRun.JsonAsync("deliver", "someone@bare.example.test", "--config", cli.ConfigFile, "--dns", dns.Server);
        Assert.Equal(1, exit);
        var mx = DiagRun.Step(report, "mx");
        Assert.Equal("warn", DiagRun.Status(mx));
        Assert.Equal("mx_missing", DiagRun.Code(mx));
        Assert.True((bool)mx["data"]!["implicit"]!);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "connect.127.0.0.1")));
        // The Postern there is not bare.example.test's mail server and relays for nobody.
        var rcpt = DiagRun.Step(report, "rcpt");
        Assert.Equal("relay_denied", DiagRun.Code(rcpt));
        Assert.Contains("554 5.7.1", (string)rcpt["saw"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ADomainThatDoesNotExistAndDnsThatDoesNotAnswerAreToldApart()
    {
        using var dns = await ZonesAsync();
        var (exit, ghost) = await DiagRun.JsonAsync("deliver", "someone@ghost.example.test", "--dns", dns.Server);
        Assert.Equal(1, exit);
        Assert.Equal("domain_not_found", DiagRun.Code(DiagRun.Step(ghost, "mx")));

        var (_, broken) = await DiagRun.JsonAsync("deliver", "someone@broken.test", "--dns", dns.Server, "--timeout", "1");
        var mx = DiagRun.Step(broken, "mx");
        Assert.Equal("dns_unreachable", DiagRun.Code(mx));
        Assert.Contains("never bounces", (string)mx["cause"]!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheTextWalksTheDialogue()
    {
        using var dns = await ZonesAsync();
        await using var peer = await PeerAsync();
        using var cli = Config(peer.MxPort);
        var (exit, text) = await DiagRun.TextAsync("deliver", "nobody@example.test", "--config", cli.ConfigFile, "--dns", dns.Server);
        Assert.Equal(1, exit);
        Assert.Contains("PASS  MX (mx)", text, StringComparison.Ordinal);
        Assert.Contains("PASS  STARTTLS (starttls)", text, StringComparison.Ordinal);
        Assert.Contains("FAIL  RCPT TO (rcpt)", text, StringComparison.Ordinal);
        Assert.Contains("tried: RCPT TO:<nobody@example.test>, then RSET and QUIT (no DATA: nothing is sent)", text, StringComparison.Ordinal);
        Assert.Contains("cause: the receiving server says this mailbox does not exist", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("deliver")]
    [InlineData("deliver", "not-an-address")]
    [InlineData("deliver", "a@b.test", "--port", "x")]
    [InlineData("deliver", "a@b.test", "--from", "nonsense")]
    public async Task UsageErrorsExit2(params string[] args) =>
        Assert.Equal(2, (await DiagRun.TextAsync(args)).Exit);
}
