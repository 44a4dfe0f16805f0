using System.Text;
using System.Text.RegularExpressions;
using MimeKit;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Delivery;

/// <summary>
/// Issue 12 (item 4, backscatter) with a real remote end. A sender nobody vouches for (port 25, not
/// authenticated, not from Relay.TrustedNetworks) writes to aliases of example.test that forward
/// to pf.test, whose MX (found in NSD) is a private Postfix: it takes other@pf.test and refuses
/// nobody@pf.test with 550 5.1.1 (not in its virtual mailbox table). The sender's domain has its MX
/// at the same Postfix, so a report Postern writes arrives in a Maildir Postfix wrote. Promised by
/// docs/security.md and BounceWriter: the refusal is reported with the original's headers only
/// (never its body, which could carry spam to a forged address); no success report goes to such a
/// sender whatever its NOTIFY says, nor a delay report when Postfix defers (450 4.2.0 from its
/// access map); and no report at all when SPF failed for the sender.
/// </summary>
public sealed class ForwardedRefusalIsNoBackscatter
{
    private const string Address = "127.0.0.41";
    private const string BodyMarker = "BODY-MUST-NOT-RETURN-5e1f";

    // pf.test authorises the test client (127.0.0.1); victim.test authorises only 192.0.2.1, so a
    // sender in victim.test from here fails SPF: it is forged.
    private static readonly Dictionary<string, string?> Zones = new()
    {
        ["pf.test"] = DnsServer.Zone("pf.test", $"""
            @        IN MX  10 mx.pf.test.
            @        IN TXT "v=spf1 ip4:127.0.0.1 -all"
            mx       IN A   {Address}

            """),
        ["victim.test"] = DnsServer.Zone("victim.test", """
            @        IN MX  10 mx.pf.test.
            @        IN TXT "v=spf1 ip4:192.0.2.1 -all"

            """),
    };

    [Fact]
    public async Task ARefusedForwardIsBouncedWithTheHeadersOnlyAndNoSuccessReport()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var postfix = await PostfixPeer.StartAsync(Address, "pf.test", "someone", "other");
        await using var server = await StartPosternAsync(dns, postfix);

        var id = await SendAsync(server, "someone@pf.test");
        await postfix.WaitForLogAsync(": reject: RCPT from", "550 5.1.1 <nobody@pf.test>");
        await server.WaitForLogAsync("event=delivery", $"queue_id={id}", "nobody@pf.test", "status=bounced", "550 5.1.1");
        // The precondition: SPF passed (the sender is not known to be forged), seen in bob's local copy.
        Assert.Contains("spf=pass", Encoding.UTF8.GetString(Assert.Single(await server.WaitForDeliveryAsync("bob@example.test"))), StringComparison.Ordinal);
        // The copy Postfix took has the body: what the report must leave out was there to return.
        Assert.Contains(BodyMarker, Encoding.UTF8.GetString(Assert.Single(await postfix.WaitForDeliveryAsync("other"))), StringComparison.Ordinal);

        var queued = await server.WaitForLogAsync("event=bounce_queued", $"queue_id={id}", "to=someone@pf.test");
        var dsnId = Field(queued, "dsn_id");
        await server.WaitForLogAsync("event=delivery", $"queue_id={dsnId}", "someone@pf.test", "relay=mx.pf.test", "status=sent");
        var raw = Assert.Single(await postfix.WaitForDeliveryAsync("someone"));
        var text = Encoding.UTF8.GetString(raw);
        Assert.DoesNotContain(BodyMarker, text, StringComparison.Ordinal);
        Assert.DoesNotContain("message/rfc822", text, StringComparison.OrdinalIgnoreCase);

        var dsn = MimeMessage.Load(new MemoryStream(raw));
        Assert.Equal("Undelivered Mail Returned to Sender", dsn.Subject);
        var report = Assert.IsType<MultipartReport>(dsn.Body);
        Assert.Equal("delivery-status", report.ReportType);
        var recipients = Assert.Single(report.OfType<MessageDeliveryStatus>()).StatusGroups.Skip(1).Where(g => g.Count > 0).ToList();
        var failed = Assert.Single(recipients); // the refused copy; other@ and bob@ (delivered) are not reported
        Assert.Equal("rfc822; nobody@pf.test", failed["Final-Recipient"]);
        Assert.Equal("failed", failed["Action"]);
        Assert.Equal("5.1.1", failed["Status"]);
        // The third part: the original's header section (RFC 6522 text/rfc822-headers, which MimeKit
        // reads as a message of header fields only), and no message/rfc822 part with the whole of it.
        Assert.Equal(["text/plain", "message/delivery-status", "text/rfc822-headers"], report.Select(p => p.ContentType.MimeType));
        var headers = Assert.IsType<TextRfc822Headers>(report[2]);
        // The header section and nothing after it (MimeKit gives a message without a body an empty text part).
        Assert.True(headers.Message!.Body is null or TextPart { Text: "" }, $"a body after the returned headers: {headers.Message.Body}");
        using var written = new MemoryStream();
        headers.Message.Headers.WriteTo(written);
        var returned = Encoding.UTF8.GetString(written.ToArray());
        Assert.Contains("Subject: forwarded, then refused", returned, StringComparison.Ordinal);
        Assert.Contains("Message-ID: <refused-1@pf.test>", returned, StringComparison.Ordinal);
        Assert.Contains("From: someone@pf.test", returned, StringComparison.Ordinal);
        Assert.DoesNotContain(BodyMarker, returned, StringComparison.Ordinal);

        // NOTIFY=SUCCESS asked for success reports (other@, bob@): none to a sender nobody vouches for.
        await server.WaitForLogAsync("event=removed", $"queue_id={id}");
        await server.WaitForLogAsync("event=removed", $"queue_id={dsnId}");
        Assert.Single(server.LogLines, l => l.Contains("event=bounce_queued", StringComparison.Ordinal) && l.Contains($"queue_id={id}", StringComparison.Ordinal));
        Assert.Single(postfix.Delivered("someone"));
    }

    [Fact]
    public async Task NoReportAtAllWhenSpfFailedForTheSender()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var postfix = await PostfixPeer.StartAsync(Address, "pf.test", "someone", "other");
        await using var server = await StartPosternAsync(dns, postfix);

        var id = await SendAsync(server, "victim@victim.test");
        await postfix.WaitForLogAsync(": reject: RCPT from", "550 5.1.1 <nobody@pf.test>");
        await server.WaitForLogAsync("event=delivery", $"queue_id={id}", "nobody@pf.test", "status=bounced", "550 5.1.1");
        // The precondition: Postern's own verdict on the sender was spf=fail (bob's local copy says so).
        Assert.Contains("spf=fail", Encoding.UTF8.GetString(Assert.Single(await server.WaitForDeliveryAsync("bob@example.test"))), StringComparison.Ordinal);
        Assert.Single(await postfix.WaitForDeliveryAsync("other"));

        // Every recipient settled and the message gone, without one report: no failure report for the
        // refused forward (SPF failed), no success report for the others (nobody vouches for the sender).
        await server.WaitForLogAsync("event=removed", $"queue_id={id}");
        Assert.DoesNotContain("event=bounce_queued", server.Logs, StringComparison.Ordinal);
        Assert.DoesNotContain("to=<victim@victim.test>", postfix.Log, StringComparison.Ordinal);
        Assert.Empty(postfix.Delivered("someone"));
    }

    [Fact]
    public async Task NoDelayReportToASenderNobodyVouchesForWhileAnAuthenticatedOneGetsIt()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var postfix = await PostfixPeer.StartAsync(Address, "pf.test", "someone", "other", "later");
        await postfix.SetRecipientAccessAsync(("later@pf.test", "450 4.2.0 try later"));
        // Every deferral is late enough for a delay report (RFC 3461 §4.1 NOTIFY=DELAY).
        await using var server = await StartPosternAsync(dns, postfix, o => o.Delivery.DelayWarningAfter = TimeSpan.FromMilliseconds(1));

        string forwarded;
        await using (var c = await RawSmtp.OpenAsync(server.MxPort, ehlo: "client.pf.test"))
        {
            await c.CommandAsync("MAIL FROM:<someone@pf.test>", 250);
            await c.CommandAsync("RCPT TO:<slow@example.test> NOTIFY=DELAY,FAILURE", 250);
            await c.CommandAsync("DATA", 354);
            forwarded = (await c.CommandAsync("From: someone@pf.test\r\nSubject: forwarded, then deferred\r\n\r\nhello\r\n.", 250)).Split(' ')[^1];
        }
        await server.WaitForLogAsync("event=delivery", $"queue_id={forwarded}", "later@pf.test", "status=deferred", "450 4.2.0");
        // queued_remote follows the reports of the same pass.
        await server.WaitForLogAsync("event=queued_remote", $"queue_id={forwarded}");
        Assert.DoesNotContain(server.LogLines, l => l.Contains("event=bounce_queued", StringComparison.Ordinal) && l.Contains($"queue_id={forwarded}", StringComparison.Ordinal));

        // The same deferral for alice (authenticated) is reported: the setting does produce delay reports.
        string submitted;
        await using (var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true))
        {
            Assert.StartsWith("235", await c.AuthPlainAsync("alice@example.test", TestServer.AlicePassword));
            await c.CommandAsync("MAIL FROM:<alice@example.test>", 250);
            await c.CommandAsync("RCPT TO:<later@pf.test> NOTIFY=DELAY,FAILURE", 250);
            await c.CommandAsync("DATA", 354);
            submitted = (await c.CommandAsync("From: alice@example.test\r\nSubject: submitted, then deferred\r\n\r\nhello\r\n.", 250)).Split(' ')[^1];
        }
        await server.WaitForLogAsync("event=bounce_queued", $"queue_id={submitted}", "to=alice@example.test");
        Assert.Contains("Subject: Delayed Mail (still being retried)", Encoding.UTF8.GetString(Assert.Single(await server.WaitForDeliveryAsync("alice@example.test"))), StringComparison.Ordinal);
        Assert.Empty(postfix.Delivered("someone"));
    }

    private static Task<TestServer> StartPosternAsync(DnsServer dns, PostfixPeer postfix, Action<Server.Configuration.PosternOptions>? more = null) => TestServer.StartAsync(o =>
    {
        o.Dns.Servers = [dns.Server];
        o.Delivery.RemotePort = postfix.EndPoint.Port;
        o.MailAuth.Enabled = true;
        // The test client is on 127.0.0.0/8 like everything here: it must not count as trusted.
        o.Relay.TrustedNetworks = [];
        o.Aliases["gone@example.test"] = ["nobody@pf.test", "bob@example.test"];
        o.Aliases["kept@example.test"] = ["other@pf.test"];
        o.Aliases["slow@example.test"] = ["later@pf.test"];
        more?.Invoke(o);
    });

    /// <summary>One message on port 25 from <paramref name="sender"/> to both aliases, asking for every report; returns its queue id.</summary>
    private static async Task<string> SendAsync(TestServer server, string sender)
    {
        await using (var c = await RawSmtp.OpenAsync(server.MxPort, ehlo: "client.pf.test"))
        {
            await c.CommandAsync($"MAIL FROM:<{sender}>", 250);
            await c.CommandAsync("RCPT TO:<gone@example.test> NOTIFY=SUCCESS,FAILURE", 250);
            await c.CommandAsync("RCPT TO:<kept@example.test> NOTIFY=SUCCESS,FAILURE", 250);
            await c.CommandAsync("DATA", 354);
            await c.CommandAsync($"From: {sender}\r\nTo: gone@example.test, kept@example.test\r\nSubject: forwarded, then refused\r\n" +
                $"Message-ID: <refused-1@pf.test>\r\n\r\nThe body, which goes nowhere near a possibly forged sender:\r\n{BodyMarker}\r\n.", 250);
        }
        return Field(await server.WaitForLogAsync("event=accepted", $"from={sender}"), "queue_id");
    }

    private static string Field(string line, string key) => Regex.Match(line, $@"\b{key}=(\S+)").Groups[1].Value;
}
