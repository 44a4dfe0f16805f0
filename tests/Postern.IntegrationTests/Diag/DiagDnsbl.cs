using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Diag;

/// <summary>
/// Issue 6, `postern diag dnsbl`: blocklist zones served by NSD on loopback list an address with
/// known codes (Spamhaus's SBL and PBL), list nothing, or answer in ways that say nothing; each gives
/// its own diagnosis, and a listing names where to ask for removal.
/// </summary>
public sealed class DiagDnsbl
{
    private static Task<DnsServer> ListsAsync() => DnsServer.StartAsync(new Dictionary<string, string?>
    {
        // A local copy of a zone under a real list's name, so that its documented codes are explained.
        ["zen.spamhaus.org"] = DnsServer.Zone("zen.spamhaus.org", """
            2.0.0.127    IN A   127.0.0.2
            2.0.0.127    IN TXT "https://check.spamhaus.org/sbl/query/SBL2"
            99.2.0.192   IN A   127.0.0.10
            """),
        ["bl.test"] = DnsServer.Zone("bl.test", """
            99.2.0.192   IN A   198.51.100.1
            98.2.0.192   IN A   127.255.255.254
            """),
        ["broken.test"] = null, // SERVFAIL
    });

    [Fact]
    public async Task AListedAddressIsExplainedWithWhereToAskForRemoval()
    {
        using var dns = await ListsAsync();
        var (exit, report) = await DiagRun.JsonAsync("dnsbl", "127.0.0.2", "--zones", "zen.spamhaus.org", "--dns", dns.Server);
        Assert.Equal(1, exit);
        var step = DiagRun.Step(report, "dnsbl.zen.spamhaus.org");
        Assert.Equal("fail", DiagRun.Status(step));
        Assert.Equal("dnsbl_listed", DiagRun.Code(step));
        Assert.Contains("127.0.0.2: SBL, a known spam source", (string)step["saw"]!);
        Assert.Contains("https://check.spamhaus.org/sbl/query/SBL2", (string)step["saw"]!);
        Assert.Contains("https://check.spamhaus.org/", (string)step["fix"]!);
        Assert.Equal("2.0.0.127.zen.spamhaus.org", (string)step["data"]!["query"]!);
    }

    [Fact]
    public async Task AnEndUserRangeIsToldToUseTheSmarthost()
    {
        using var dns = await ListsAsync();
        var (exit, report) = await DiagRun.JsonAsync("dnsbl", "192.0.2.99", "--zones", "zen.spamhaus.org", "--dns", dns.Server);
        Assert.Equal(1, exit);
        var step = DiagRun.Step(report, "dnsbl.zen.spamhaus.org");
        Assert.Equal("dnsbl_policy_listed", DiagRun.Code(step));
        Assert.Contains("PBL", (string)step["saw"]!);
        Assert.Contains("Relay.Smarthost", (string)step["fix"]!);
    }

    [Fact]
    public async Task NotListedAndUselessAnswersAreToldApart()
    {
        using var dns = await ListsAsync();
        var (exit, report) = await DiagRun.JsonAsync("dnsbl", "192.0.2.7", "--zones", "zen.spamhaus.org,bl.test,broken.test", "--dns", dns.Server, "--timeout", "1");
        Assert.Equal(0, exit);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "dnsbl.zen.spamhaus.org")));
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "dnsbl.bl.test")));
        Assert.Equal("dnsbl_unreachable", DiagRun.Code(DiagRun.Step(report, "dnsbl.broken.test")));

        // An answer outside 127.0.0.0/8, and a list's "refused" code, are not listings.
        var (_, odd) = await DiagRun.JsonAsync("dnsbl", "192.0.2.99", "--zones", "bl.test", "--dns", dns.Server);
        Assert.Equal("dnsbl_refused", DiagRun.Code(DiagRun.Step(odd, "dnsbl.bl.test")));
        var (_, refused) = await DiagRun.JsonAsync("dnsbl", "192.0.2.98", "--zones", "bl.test", "--dns", dns.Server);
        Assert.Contains("public or shared resolvers", (string)DiagRun.Step(refused, "dnsbl.bl.test")["saw"]!);
    }

    [Fact]
    public async Task TheTextSaysWhatWasTriedAndSeenAndTheExitCodeFollows()
    {
        using var dns = await ListsAsync();
        var (exit, text) = await DiagRun.TextAsync("dnsbl", "127.0.0.2", "--zones", "zen.spamhaus.org", "--dns", dns.Server);
        Assert.Equal(1, exit);
        Assert.Contains("FAIL  blocklist zen.spamhaus.org (dnsbl.zen.spamhaus.org)", text);
        Assert.Contains("tried: A and TXT of 2.0.0.127.zen.spamhaus.org", text);
        Assert.Contains("saw:   LISTED", text);
        Assert.Contains("fix:", text);
        Assert.Contains("problems found: 0 passed, 0 warnings, 1 failed", text);
        Assert.DoesNotContain("\u001b[", text); // no colours when not on a terminal
    }

    [Fact]
    public async Task AZoneNameDnsCannotCarryIsAnswerNotACrash()
    {
        using var dns = await ListsAsync();
        var label = new string('a', 64); // one label longer than DNS allows
        var (exit, report) = await DiagRun.JsonAsync("dnsbl", "192.0.2.7", "--zones", $"{label}.test", "--dns", dns.Server);
        Assert.Equal(0, exit);
        Assert.DoesNotContain(report["steps"]!.AsArray(), s => (string?)s!["id"] == "check.failed");
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, $"dnsbl.{label}.test")));
    }

    [Theory]
    [InlineData("dnsbl")]
    [InlineData("dnsbl", "not-an-ip")]
    [InlineData("dnsbl", "25")] // IPAddress would read 0.0.0.25: not an address anyone means
    [InlineData("nosuchcheck")]
    public async Task UsageErrorsExit2(params string[] args) =>
        Assert.Equal(2, (await DiagRun.TextAsync(args)).Exit);
}
