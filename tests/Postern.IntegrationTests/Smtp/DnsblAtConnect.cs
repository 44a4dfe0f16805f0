using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 4 item 4: DNS blocklists at connect, against a real DNS server (NSD) on loopback serving
/// the lists. Other loopback addresses stand for other clients: 127.0.0.2 is on bl.test (weight 2,
/// the threshold), 127.0.0.3 only on bl2.test (weight 1, below it), 127.0.0.4 on bl.test but also on
/// the allow list wl.test, 127.0.0.5 on both block lists, 127.0.0.1 on none.
/// </summary>
public sealed class DnsblAtConnect
{
    private static readonly Dictionary<string, string?> Zones = new()
    {
        ["bl.test"] = DnsServer.Zone("bl.test", """
            2.0.0.127 IN A 127.0.0.2
            4.0.0.127 IN A 127.0.0.2
            5.0.0.127 IN A 127.0.0.2
            ; RFC 5782 §5: the test entry
            2.0.0.127 IN TXT "test entry"
            """),
        ["bl2.test"] = DnsServer.Zone("bl2.test", """
            3.0.0.127 IN A 127.0.0.3
            5.0.0.127 IN A 127.0.0.3
            """),
        ["wl.test"] = DnsServer.Zone("wl.test", """
            4.0.0.127 IN A 127.0.10.2
            """),
        // Configured without data: NSD answers SERVFAIL, as a broken list would.
        ["broken.test"] = null,
    };

    private static readonly IPAddress Listed = IPAddress.Parse("127.0.0.2");
    private static readonly IPAddress BelowThreshold = IPAddress.Parse("127.0.0.3");
    private static readonly IPAddress AllowListed = IPAddress.Parse("127.0.0.4");
    private static readonly IPAddress OnBoth = IPAddress.Parse("127.0.0.5");
    private static readonly IPAddress Clean = IPAddress.Parse("127.0.0.1");

    private static void Lists(PosternOptions o, string dnsServer, TimeSpan? timeout = null)
    {
        o.Dns.Servers = [dnsServer];
        o.Dnsbl = new DnsblOptions
        {
            Lists = [new() { Zone = "bl.test", Weight = 2 }, new() { Zone = "bl2.test", Weight = 1 }],
            AllowLists = [new() { Zone = "wl.test", Weight = 5, Answers = ["127.0.[0..255].[1..3]"] }],
            Threshold = 2,
            Timeout = timeout ?? TimeSpan.FromSeconds(5),
        };
    }

    private static async Task<(string Greeting, TimeSpan Waited)> GreetingAsync(int port, IPAddress from)
    {
        var clock = Stopwatch.StartNew();
        await using var c = await RawSmtp.ConnectAsync(port, from: from);
        var greeting = await c.ReadReplyAsync();
        return (greeting, clock.Elapsed);
    }

    [Fact]
    public async Task AListedClientIsRefusedNamingTheListThenOnlyQuitIsAccepted()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o => Lists(o, dns.Server));
        await using var c = await RawSmtp.ConnectAsync(server.MxPort, from: Listed);
        Assert.Equal("554 5.7.1 Service unavailable; client [127.0.0.2] listed at bl.test", await c.ReadReplyAsync());
        // RFC 5321 §3.1: the server waits for QUIT and answers anything else 503.
        Assert.StartsWith("503 5.5.1", await c.CommandAsync("EHLO spammer.example"));
        Assert.StartsWith("503 5.5.1", await c.CommandAsync("MAIL FROM:<a@spammer.example>"));
        Assert.StartsWith("221 ", await c.CommandAsync("QUIT"));
        Assert.True(await c.IsClosedAsync());
        await server.WaitForLogAsync("event=rejected", "ip=127.0.0.2", "command=CONNECT", "code=554", "enhanced=5.7.1",
            "reason=dnsbl ", "detail=\"listed at bl.test (127.0.0.2, weight 2); score 2, threshold 2\"");
        await server.WaitForLogAsync("event=disconnect", "ip=127.0.0.2", "reason=dnsbl");
    }

    [Fact]
    public async Task AListedClientThatKeepsTalkingIsCutOff()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o =>
        {
            Lists(o, dns.Server);
            o.Limits.MaxErrors = 3;
        });
        await using var bot = await RawSmtp.ConnectAsync(server.MxPort, from: OnBoth);
        // Both lists named, in the order configured.
        Assert.Equal("554 5.7.1 Service unavailable; client [127.0.0.5] listed at bl.test, bl2.test", await bot.ReadReplyAsync());
        await bot.SendAsync("EHLO bot.example\r\nMAIL FROM:<a@bot.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
        Assert.StartsWith("503 5.5.1", await bot.ReadReplyAsync());
        Assert.StartsWith("503 5.5.1", await bot.ReadReplyAsync());
        // The refusal at connect was the first error, so the third is the limit.
        Assert.StartsWith("421 4.7.0", await bot.ReadReplyAsync());
        Assert.True(await bot.IsClosedAsync());
        await server.WaitForLogAsync("event=rejected", "ip=127.0.0.5", "command=CONNECT", "score 3, threshold 2");
        await server.WaitForLogAsync("event=disconnect", "ip=127.0.0.5", "reason=\"too many errors\"");
    }

    [Fact]
    public async Task ClientsNotListedBelowTheThresholdOrAllowListedAreGreeted()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o => Lists(o, dns.Server));
        await using (var c = await RawSmtp.OpenAsync(server.MxPort, from: Clean))
        {
            await c.CommandAsync("MAIL FROM:<someone@good.example>", 250);
            await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
            await c.CommandAsync("QUIT", 221);
        }
        Assert.StartsWith("220 ", (await GreetingAsync(server.MxPort, BelowThreshold)).Greeting);
        Assert.StartsWith("220 ", (await GreetingAsync(server.MxPort, AllowListed)).Greeting);
        // Greeted, but the log says which lists had them, and why that was not enough.
        await server.WaitForLogAsync("event=dnsbl_passed", "ip=127.0.0.3", "score=1 threshold=2", "listed at bl2.test (127.0.0.3, weight 1)");
        await server.WaitForLogAsync("event=dnsbl_passed", "ip=127.0.0.4", "score=-3 threshold=2", "allowed by wl.test (127.0.10.2, weight 5)");
        Assert.DoesNotContain(server.LogLines, l => l.Contains("event=dnsbl_passed", StringComparison.Ordinal) && l.Contains("ip=127.0.0.1 ", StringComparison.Ordinal));
        Assert.DoesNotContain(server.LogLines, l => l.Contains("event=dnsbl_failed", StringComparison.Ordinal));
        Assert.DoesNotContain(server.LogLines, l => l.Contains("code=554", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AListThatTimesOutIsSkippedAfterTheTimeout()
    {
        // A "DNS server" that takes every question and never answers.
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var timeout = TimeSpan.FromSeconds(1);
        await using var server = await TestServer.StartAsync(o => Lists(o, silent.LocalEndPoint!.ToString()!, timeout));
        var (greeting, waited) = await GreetingAsync(server.MxPort, Listed);
        Assert.StartsWith("220 ", greeting);
        Assert.InRange(waited, timeout * 0.9, timeout + TimeSpan.FromSeconds(3));
        // Whichever gives up first, Postern's deadline or the DNS client's two tries, the line says so.
        await server.WaitForLogAsync("event=dnsbl_failed", "zone=bl.test", "ip=127.0.0.2", "reason=\"no answer ");
        await server.WaitForLogAsync("event=dnsbl_failed", "zone=wl.test");
    }

    [Fact]
    public async Task AFailingListIsSkippedAndTheOthersStillCount()
    {
        using var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o =>
        {
            Lists(o, dns.Server);
            o.Dnsbl.Lists.Insert(0, new DnsListOptions { Zone = "broken.test", Weight = 10 });
        });
        Assert.Equal("554 5.7.1 Service unavailable; client [127.0.0.2] listed at bl.test", (await GreetingAsync(server.MxPort, Listed)).Greeting);
        Assert.StartsWith("220 ", (await GreetingAsync(server.MxPort, Clean)).Greeting);
        await server.WaitForLogAsync("event=dnsbl_failed", "zone=broken.test", $"{dns.Server} answered ServerFailure");
        // Once a minute per list at most: the second client's failure did not get a line of its own.
        Assert.Single(server.LogLines, l => l.Contains("event=dnsbl_failed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AVerdictIsKeptSoTheNextConnectionDoesNotAskAgain()
    {
        var dns = await DnsServer.StartAsync(Zones);
        await using var server = await TestServer.StartAsync(o => Lists(o, dns.Server, TimeSpan.FromSeconds(2)));
        Assert.StartsWith("554 5.7.1", (await GreetingAsync(server.MxPort, Listed)).Greeting);
        Assert.StartsWith("220 ", (await GreetingAsync(server.MxPort, Clean)).Greeting);
        // No DNS from here on: what the clients get now comes from the cache, at once.
        dns.Dispose();
        var (refused, waited) = await GreetingAsync(server.MxPort, Listed);
        Assert.StartsWith("554 5.7.1 Service unavailable; client [127.0.0.2] listed at bl.test", refused);
        Assert.True(waited < TimeSpan.FromSeconds(1), $"waited {waited}");
        Assert.StartsWith("220 ", (await GreetingAsync(server.MxPort, Clean)).Greeting);
        Assert.DoesNotContain(server.LogLines, l => l.Contains("event=dnsbl_failed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TrustedNetworksAndSubmissionAreNotChecked()
    {
        // The DNS server never answers: a client that were checked would wait the whole timeout.
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        await using var server = await TestServer.StartAsync(o =>
        {
            Lists(o, silent.LocalEndPoint!.ToString()!, TimeSpan.FromSeconds(3));
            o.Relay.TrustedNetworks = ["127.0.0.2/32"];
        });
        var trusted = await GreetingAsync(server.MxPort, Listed);
        Assert.StartsWith("220 ", trusted.Greeting);
        Assert.True(trusted.Waited < TimeSpan.FromSeconds(2), $"waited {trusted.Waited}");
        var (greeting, waited) = await GreetingAsync(server.SubmissionPort, OnBoth);
        Assert.StartsWith("220 ", greeting);
        Assert.True(waited < TimeSpan.FromSeconds(2), $"waited {waited}");
        Assert.DoesNotContain(server.LogLines, l => l.Contains("event=dnsbl", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheLookupRunsDuringTheGreetingPause()
    {
        // Both take two seconds; run one after the other they would take four.
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var wait = TimeSpan.FromSeconds(2);
        await using var server = await TestServer.StartAsync(o =>
        {
            Lists(o, silent.LocalEndPoint!.ToString()!, wait);
            o.Triage.Enabled = true;
            o.Triage.GreetingPause = wait;
        });
        var (greeting, waited) = await GreetingAsync(server.MxPort, Clean);
        Assert.StartsWith("220 ", greeting);
        Assert.InRange(waited, wait * 0.9, wait + TimeSpan.FromSeconds(1.5));
    }
}
