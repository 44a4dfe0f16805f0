using System.Globalization;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Diag;

/// <summary>
/// Issue 6, `postern diag relay`: the classic open-relay address forms against real servers. A
/// private Postfix relays for its mynetworks (127.0.0.0/8, with permit_mynetworks), which holds the
/// address the check connects from: for this client it is an open relay, and the check says so,
/// naming the forms it accepted. Postern, which relays only for AUTH users and
/// Relay.TrustedNetworks (none here), refuses every form. No DATA is ever sent.
/// </summary>
public sealed class DiagRelay
{
    private const string PostfixAddress = "127.0.0.36";

    [Fact]
    public async Task PostfixRelayingForTheCheckersNetworkIsAnOpenRelay()
    {
        await using var postfix = await PostfixPeer.StartAsync(PostfixAddress, "pf.test", "someone");
        var (exit, report) = await DiagRun.JsonAsync("relay", PostfixAddress, "--port", postfix.EndPoint.Port.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(1, exit);

        var plain = DiagRun.Step(report, "relay.plain");
        Assert.Equal("fail", DiagRun.Status(plain));
        Assert.Equal("open_relay", DiagRun.Code(plain));
        Assert.StartsWith("ACCEPTED: 250", (string)plain["saw"]!, StringComparison.Ordinal);
        Assert.Equal("relaytest@example.net", (string)plain["data"]!["rcpt_to"]!);
        Assert.Equal("open_relay", DiagRun.Code(DiagRun.Step(report, "relay.null_sender")));

        var verdict = DiagRun.Step(report, "relay.verdict");
        Assert.Equal("fail", DiagRun.Status(verdict));
        Assert.Equal("open_relay", DiagRun.Code(verdict));
        var accepted = verdict["data"]!["accepted"]!.AsArray().Select(a => (string)a!).ToList();
        Assert.Contains("relay.plain", accepted);
        Assert.Contains("relay.own_sender", accepted);
        Assert.Contains("relay.plain", (string)verdict["saw"]!, StringComparison.Ordinal);
        Assert.Contains("smtpd_relay_restrictions", (string)verdict["fix"]!, StringComparison.Ordinal);
        Assert.Contains("mynetworks", (string)verdict["fix"]!, StringComparison.Ordinal);

        // The server's domain comes from its greeting (mx.pf.test) when HOST is an address.
        Assert.Equal("relaytest%example.net@pf.test", (string)DiagRun.Step(report, "relay.percent")["data"]!["rcpt_to"]!);
        Assert.Equal("@pf.test:relaytest@example.net", (string)DiagRun.Step(report, "relay.source_route")["data"]!["rcpt_to"]!);
        Assert.Equal($"\"relaytest@example.net\"@[{PostfixAddress}]", (string)DiagRun.Step(report, "relay.quoted_literal")["data"]!["rcpt_to"]!);
        // STARTTLS was offered, so the forms went over TLS, as anyone's could.
        Assert.StartsWith("TLSv1.", (string)DiagRun.Step(report, "ehlo")["data"]!["tls"]!, StringComparison.Ordinal);

        // Acceptance at RCPT is the verdict: nothing was queued, let alone sent.
        Assert.DoesNotContain("DATA", postfix.Log, StringComparison.Ordinal);
        Assert.DoesNotContain("queued as", postfix.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PosternRefusesEveryForm()
    {
        await using var server = await TestServer.StartAsync();
        var (exit, report) = await DiagRun.JsonAsync("relay", "127.0.0.1", "--port", server.MxPort.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(0, exit);
        var verdict = DiagRun.Step(report, "relay.verdict");
        Assert.Equal("pass", DiagRun.Status(verdict));
        Assert.False((bool)verdict["data"]!["open_relay"]!);
        Assert.Empty(verdict["data"]!["accepted"]!.AsArray());

        var plain = DiagRun.Step(report, "relay.plain");
        Assert.Equal("pass", DiagRun.Status(plain));
        Assert.Contains("554 5.7.1 Relay access denied", (string)plain["saw"]!, StringComparison.Ordinal);
        foreach (var id in new[] { "relay.null_sender", "relay.percent", "relay.bang", "relay.quoted", "relay.source_route", "relay.literal", "relay.quoted_literal", "relay.own_sender" })
        {
            Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, id)));
        }
        // The domain from Postern's greeting (mx.example.test): the percent hack aims at a local domain.
        Assert.Equal("relaytest%example.net@example.test", (string)DiagRun.Step(report, "relay.percent")["data"]!["rcpt_to"]!);
        var messages = Path.Combine(server.DataDir, "queue", "messages");
        Assert.True(!Directory.Exists(messages) || Directory.GetFiles(messages).Length == 0, "a message was queued");
    }

    [Fact]
    public async Task FromDomainNamesTheDomainOfTheTricks()
    {
        await using var server = await TestServer.StartAsync();
        var (_, report) = await DiagRun.JsonAsync("relay", "127.0.0.1", "--port", server.MxPort.ToString(CultureInfo.InvariantCulture), "--from-domain", "localhost");
        Assert.Equal("example.net!relaytest@localhost", (string)DiagRun.Step(report, "relay.bang")["data"]!["rcpt_to"]!);
        Assert.Equal("relaytest@localhost", (string)DiagRun.Step(report, "relay.own_sender")["data"]!["mail_from"]!);
    }

    [Fact]
    public async Task TheTextNamesEachFormAndTheVerdict()
    {
        await using var postfix = await PostfixPeer.StartAsync(PostfixAddress, "pf.test", "someone");
        var (exit, text) = await DiagRun.TextAsync("relay", PostfixAddress, "--port", postfix.EndPoint.Port.ToString(CultureInfo.InvariantCulture));
        Assert.Equal(1, exit);
        Assert.Contains("FAIL  outside to outside (relay.plain)", text, StringComparison.Ordinal);
        Assert.Contains("tried: MAIL FROM:<relaytest@example.org> then RCPT TO:<relaytest@example.net>", text, StringComparison.Ordinal);
        Assert.Contains("FAIL  open relay (relay.verdict)", text, StringComparison.Ordinal);
        Assert.Contains("problems found:", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NothingListeningIsSaidPlainly()
    {
        var port = Ports.Free(System.Net.IPAddress.Loopback);
        var (exit, report) = await DiagRun.JsonAsync("relay", "127.0.0.1", "--port", port.ToString(CultureInfo.InvariantCulture), "--timeout", "1");
        Assert.Equal(1, exit);
        Assert.Equal("port_refused", DiagRun.Code(DiagRun.Step(report, "connect.127.0.0.1")));
        Assert.Equal("no_server_answers", DiagRun.Code(DiagRun.Step(report, "connect")));
    }

    [Theory]
    [InlineData("relay")]
    [InlineData("relay", "a", "b")]
    [InlineData("relay", "mx.example.org", "--port", "0")]
    [InlineData("relay", "mx.example.org", "--from-domain", "not a domain")]
    public async Task UsageErrorsExit2(params string[] args) =>
        Assert.Equal(2, (await DiagRun.TextAsync(args)).Exit);
}
