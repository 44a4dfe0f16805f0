using System.Text;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.MailAuth;

/// <summary>
/// Issue 5, end to end: SPF checked at MAIL FROM against a real DNS server on loopback (NSD), the
/// result recorded in an Authentication-Results field on top of the delivered message, and a
/// failing sender refused when MailAuth.RejectSpfFail says so, globally or on one listener.
/// </summary>
public sealed class SpfAtMailFrom
{
    private static readonly Dictionary<string, string?> Zones = new()
    {
        ["good.test"] = DnsServer.Zone("good.test", """
            @   IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
            """),
        ["bad.test"] = DnsServer.Zone("bad.test", """
            @   IN TXT "v=spf1 ip4:192.0.2.1 exp=why.bad.test -all"
            why IN TXT "%{i} is not a mail server of %{d}"
            """),
        ["broken.test"] = null, // SERVFAIL
    };

    private static async Task<string> SendAsync(TestServer server, string from, int expect = 250)
    {
        await using var c = await RawSmtp.OpenAsync(server.MxPort, ehlo: "client.good.test");
        var reply = await c.CommandAsync($"MAIL FROM:<{from}>");
        if (!reply.StartsWith("250", StringComparison.Ordinal))
        {
            Assert.StartsWith(expect.ToString(System.Globalization.CultureInfo.InvariantCulture), reply);
            return reply;
        }
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        return await c.CommandAsync($"From: {from}\r\nSubject: spf\r\nAuthentication-Results: mx.example.test; spf=pass (forged by the sender)\r\n\r\nbody\r\n.", expect);
    }

    private static async Task<string> DeliveredAsync(TestServer server, int count) =>
        Encoding.UTF8.GetString((await server.WaitForDeliveryAsync("alice@example.test", count)).Last());

    [Fact]
    public async Task PassFailAndTemperrorAreRecordedOnTop()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.MailAuth.Enabled = true;
            o.Dns.Servers = [dns.Server];
        });
        await SendAsync(server, "someone@good.test");
        var first = await DeliveredAsync(server, 1);
        Assert.StartsWith("Return-Path: <someone@good.test>\r\nDelivered-To: alice@example.test\r\nAuthentication-Results: mx.example.test;\r\n\tspf=pass", first);
        Assert.Contains("smtp.mailfrom=someone@good.test", first);

        await SendAsync(server, "someone@bad.test");
        await SendAsync(server, "someone@broken.test");
        var all = (await server.WaitForDeliveryAsync("alice@example.test", 3)).Select(b => Encoding.UTF8.GetString(b)).ToList();
        Assert.Contains(all, m => m.Contains("\tspf=fail", StringComparison.Ordinal) && m.Contains("smtp.mailfrom=someone@bad.test", StringComparison.Ordinal));
        Assert.Contains(all, m => m.Contains("\tspf=temperror", StringComparison.Ordinal) && m.Contains("smtp.mailfrom=someone@broken.test", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AFailingSenderIsRefusedWithTheDomainsExplanationWhenConfigured()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.MailAuth.Enabled = true;
            o.MailAuth.RejectSpfFail = true;
            o.Dns.Servers = [dns.Server];
        });
        var reply = await SendAsync(server, "someone@bad.test", 550);
        Assert.StartsWith("550 5.7.23 SPF check failed: 127.0.0.1 is not a mail server of bad.test", reply);
        await server.WaitForLogAsync("event=rejected", "command=MAIL", "code=550", "enhanced=5.7.23");
        // A passing sender is taken as before.
        Assert.StartsWith("250", await SendAsync(server, "someone@good.test"));
    }

    [Fact]
    public async Task AuthenticatedUsersAndTrustedNetworksAreNotChecked()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.MailAuth.Enabled = true;
            o.MailAuth.RejectSpfFail = true;
            o.Relay.TrustedNetworks = ["127.0.0.0/8"];
            o.Dns.Servers = [dns.Server];
        });
        Assert.StartsWith("250", await SendAsync(server, "someone@bad.test"));
        Assert.DoesNotContain("Authentication-Results: mx.example.test;\r\n", await DeliveredAsync(server, 1), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TrustedNetworksAreCheckedWhenSkipTrustedNetworksIsOff()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.MailAuth.Enabled = true;
            o.MailAuth.RejectSpfFail = true;
            o.MailAuth.SkipTrustedNetworks = false;
            o.Relay.TrustedNetworks = ["127.0.0.0/8"];
            o.Dns.Servers = [dns.Server];
        });
        Assert.StartsWith("550 5.7.23", await SendAsync(server, "someone@bad.test", 550));
    }

    [Fact]
    public async Task AListenersOwnPolicyOverridesTheGlobalOne()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.MailAuth.Enabled = true;
            o.Dns.Servers = [dns.Server];
            // The first mx listener refuses SPF failures; a second one, for a partner, does not check at all.
            o.Listeners[0].MailAuth = new Postern.Server.Configuration.MailAuthPolicy { RejectSpfFail = true };
            o.Listeners.Add(new Postern.Server.Configuration.ListenerOptions
            {
                Name = "partner",
                Endpoint = "127.0.0.1:0",
                Role = Postern.Server.Configuration.ListenerRole.Mx,
                MailAuth = new Postern.Server.Configuration.MailAuthPolicy { Enabled = false },
            });
        });
        Assert.StartsWith("550 5.7.23", await SendAsync(server, "someone@bad.test", 550));

        await using var c = await RawSmtp.OpenAsync(server.Server.Listeners[3].LocalEndPoint.Port, ehlo: "client.good.test");
        await c.CommandAsync("MAIL FROM:<someone@bad.test>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        await c.CommandAsync("From: someone@bad.test\r\nSubject: partner\r\n\r\nbody\r\n.", 250);
        Assert.DoesNotContain("Authentication-Results: mx.example.test;", await DeliveredAsync(server, 1), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AUsersOwnMailIsRecordedAsAuthPassNotChecked()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o =>
        {
            o.MailAuth.Enabled = true;
            o.Dns.Servers = [dns.Server];
        });
        await using (var c = await RawSmtp.OpenAsync(server.SubmissionsPort, implicitTls: true))
        {
            Assert.StartsWith("235", await c.AuthPlainAsync("bob@example.test", TestServer.BobPassword));
            await c.CommandAsync("MAIL FROM:<bob@example.test>", 250);
            await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
            await c.CommandAsync("DATA", 354);
            await c.CommandAsync("From: bob@example.test\r\nSubject: from a colleague\r\n\r\nbody\r\n.", 250);
        }
        var delivered = await DeliveredAsync(server, 1);
        Assert.Contains("Authentication-Results: mx.example.test;\r\n\tauth=pass smtp.auth=bob@example.test\r\n", delivered);
        Assert.DoesNotContain("spf=", delivered);
    }
}
