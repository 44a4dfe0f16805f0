using Postern.IntegrationTests.Cli;
using Postern.IntegrationTests.Infrastructure;
using Postern.MailAuth.Dkim;

namespace Postern.IntegrationTests.Diag;

/// <summary>
/// Issue 6, `postern diag dns`: zones served by NSD on loopback, healthy or broken in one way each
/// (SPF missing, doubled, misspelt, not covering the address, over the lookup limit; a DKIM key that
/// is not Postern's; no DMARC; a null MX; a PTR that does not point back), and each is named by its
/// step and code.
/// </summary>
public sealed class DiagDns
{
    // The sending address of the checks below, and the key good.test publishes.
    private const string SendingIp = "192.0.2.25";
    private static readonly Lazy<DkimSigningKey> GoodKey = new(() => DkimSigningKey.Generate("good.test", "sel1", DkimKeyType.Rsa).Key);

    private static Dictionary<string, string?> Zones() => new()
    {
        ["good.test"] = DnsServer.Zone("good.test", $"""
            @         IN MX  10 mx.good.test.
            @         IN MX  20 mx2.good.test.
            mx        IN A   192.0.2.10
            mx2       IN A   192.0.2.11
            out       IN A   192.0.2.25
            liar      IN A   192.0.2.67
            @         IN TXT "v=spf1 mx ip4:192.0.2.25 -all"
            _dmarc    IN TXT "v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@good.test"
            _mta-sts  IN TXT "v=STSv1; id=20260101T000000"
            sub       IN MX  10 mx.good.test.
            sub       IN TXT "v=spf1 mx -all"
            {GoodKey.Value.TxtRecord.ZoneFileLine}
            """),
        ["2.0.192.in-addr.arpa"] = DnsServer.Zone("2.0.192.in-addr.arpa", """
            10  IN PTR mx.good.test.
            11  IN PTR mx2.good.test.
            25  IN PTR out.good.test.
            66  IN PTR liar.good.test.
            """),
        ["spf.test"] = DnsServer.Zone("spf.test", """
            missing  IN MX  10 mx.good.test.
            double   IN MX  10 mx.good.test.
            double   IN TXT "v=spf1 mx -all"
            double   IN TXT "v=spf1 ip4:192.0.2.99 ~all"
            broken   IN MX  10 mx.good.test.
            broken   IN TXT "v=spf1 mx ip4:192.0.2.300 -all"
            narrow   IN MX  10 mx.good.test.
            narrow   IN TXT "v=spf1 ip4:198.51.100.0/24 -all"
            soft     IN MX  10 mx.good.test.
            soft     IN TXT "v=spf1 ip4:198.51.100.0/24 ~all"
            many     IN MX  10 mx.good.test.
            many     IN TXT "v=spf1 include:i1.spf.test include:i2.spf.test include:i3.spf.test a mx -all"
            i1       IN TXT "v=spf1 a mx exists:x.spf.test -all"
            i2       IN TXT "v=spf1 a mx exists:x.spf.test -all"
            i3       IN TXT "v=spf1 a mx include:gone.spf.test -all"
            """),
        ["mx.test"] = DnsServer.Zone("mx.test", """
            nullmx   IN MX  0 .
            mixed    IN MX  0 .
            mixed    IN MX  10 mx.good.test.
            bare     IN A   192.0.2.40
            hosts    IN MX  10 gone.mx.test.
            hosts    IN MX  20 alias.mx.test.
            alias    IN CNAME real.mx.test.
            real     IN A   192.0.2.41
            """),
    };

    [Fact]
    public async Task AHealthyDomainPassesEveryStep()
    {
        using var dns = await DnsServer.StartAsync(Zones());
        var (exit, report) = await DiagRun.JsonAsync("dns", "good.test", "--ip", SendingIp, "--selector", "sel1", "--dns", dns.Server);
        Assert.Equal(0, exit);
        Assert.Equal(0, (int)report["summary"]!["warn"]!);
        Assert.Equal(0, (int)report["summary"]!["fail"]!);
        var mx = DiagRun.Step(report, "mx");
        Assert.Equal("pass", DiagRun.Status(mx));
        Assert.Contains("10 mx.good.test, 20 mx2.good.test", (string)mx["saw"]!);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "mx.mx.good.test")));
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "mx.mx2.good.test")));
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "ptr.192.0.2.10")));
        var sending = DiagRun.Step(report, "ptr.192.0.2.25");
        Assert.Equal("pass", DiagRun.Status(sending));
        Assert.Equal("sending address", (string)sending["data"]!["role"]!);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "spf.record")));
        var lookups = DiagRun.Step(report, "spf.lookups");
        Assert.Equal(1, (int)lookups["data"]!["lookups"]!);
        var covers = DiagRun.Step(report, "spf.192.0.2.25");
        Assert.Equal("pass", DiagRun.Status(covers));
        Assert.Equal("ip4:192.0.2.25", (string)covers["data"]!["deciding_term"]!);
        var dkim = DiagRun.Step(report, "dkim.sel1");
        Assert.Equal("pass", DiagRun.Status(dkim));
        Assert.Equal("rsa", (string)dkim["data"]!["key_type"]!);
        Assert.Equal(2048, (int)dkim["data"]!["key_bits"]!);
        var dmarc = DiagRun.Step(report, "dmarc");
        Assert.Equal("pass", DiagRun.Status(dmarc));
        Assert.Contains("mail that fails DMARC is refused (p=reject)", (string)dmarc["saw"]!);
        Assert.Contains("subdomains: quarantine", (string)dmarc["saw"]!);
        Assert.Contains("reports to mailto:dmarc@good.test", (string)dmarc["saw"]!);
        var sts = DiagRun.Step(report, "mta_sts");
        Assert.Equal("pass", DiagRun.Status(sts));
        Assert.Equal("20260101T000000", (string)sts["data"]!["id"]!);
    }

    [Fact]
    public async Task ASubdomainInheritsTheOrganizationalDomainsDmarcRecord()
    {
        using var dns = await DnsServer.StartAsync(Zones());
        var (_, report) = await DiagRun.JsonAsync("dns", "sub.good.test", "--dns", dns.Server);
        var dmarc = DiagRun.Step(report, "dmarc");
        Assert.Equal("pass", DiagRun.Status(dmarc));
        Assert.True((bool)dmarc["data"]!["inherited"]!);
        Assert.Equal("good.test", (string)dmarc["data"]!["record_domain"]!);
        Assert.Contains("goes to spam (p=quarantine), by the sp= of the organizational domain", (string)dmarc["saw"]!);
        // Without --ip or a configuration the sending address is unknown, and said to be.
        Assert.Equal("info", DiagRun.Status(DiagRun.Step(report, "sending_ip")));
        Assert.Equal("info", DiagRun.Status(DiagRun.Step(report, "dkim")));
    }

    [Fact]
    public async Task AMissingSpfRecordIsNamedWithARecordToPublish()
    {
        using var dns = await DnsServer.StartAsync(Zones());
        var (exit, report) = await DiagRun.JsonAsync("dns", "missing.spf.test", "--ip", SendingIp, "--dns", dns.Server);
        Assert.Equal(1, exit);
        var spf = DiagRun.Step(report, "spf.record");
        Assert.Equal("fail", DiagRun.Status(spf));
        Assert.Equal("spf_missing", DiagRun.Code(spf));
        Assert.Contains("missing.spf.test. IN TXT \"v=spf1 mx ip4:192.0.2.25 -all\"", (string)spf["fix"]!);

        // Without a sending address to vouch for, it is only a warning.
        var (_, unknown) = await DiagRun.JsonAsync("dns", "missing.spf.test", "--dns", dns.Server);
        Assert.Equal("warn", DiagRun.Status(DiagRun.Step(unknown, "spf.record")));
    }

    [Fact]
    public async Task TwoSpfRecordsAreAPermanentErrorAndAMergeIsSuggested()
    {
        using var dns = await DnsServer.StartAsync(Zones());
        var (exit, report) = await DiagRun.JsonAsync("dns", "double.spf.test", "--ip", SendingIp, "--dns", dns.Server);
        Assert.Equal(1, exit);
        var spf = DiagRun.Step(report, "spf.record");
        Assert.Equal("spf_multiple", DiagRun.Code(spf));
        Assert.Equal(2, spf["data"]!["records"]!.AsArray().Count);
        Assert.Contains("\"v=spf1 mx ip4:192.0.2.99 -all\"", (string)spf["fix"]!);
    }

    [Fact]
    public async Task ASyntaxErrorInTheSpfRecordIsNamed()
    {
        using var dns = await DnsServer.StartAsync(Zones());
        var (exit, report) = await DiagRun.JsonAsync("dns", "broken.spf.test", "--ip", SendingIp, "--dns", dns.Server);
        Assert.Equal(1, exit);
        var spf = DiagRun.Step(report, "spf.record");
        Assert.Equal("spf_syntax", DiagRun.Code(spf));
        Assert.Contains("ip4:192.0.2.300", (string)spf["data"]!["error"]!);
    }

    [Fact]
    public async Task AnSpfRecordThatDoesNotCoverTheSendingAddressSaysWhatToAdd()
    {
        using var dns = await DnsServer.StartAsync(Zones());
        var (exit, report) = await DiagRun.JsonAsync("dns", "narrow.spf.test", "--ip", SendingIp, "--dns", dns.Server);
        Assert.Equal(1, exit);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(report, "spf.record")));
        var covers = DiagRun.Step(report, "spf.192.0.2.25");
        Assert.Equal("spf_fail", DiagRun.Code(covers));
        Assert.Equal("-all", (string)covers["data"]!["deciding_term"]!);
        Assert.Contains("narrow.spf.test. IN TXT \"v=spf1 ip4:198.51.100.0/24 ip4:192.0.2.25 -all\"", (string)covers["fix"]!);

        // ~all is a softfail: a warning. An MX host's own address is covered by adding mx.
        var (softExit, soft) = await DiagRun.JsonAsync("dns", "soft.spf.test", "--ip", "192.0.2.10", "--dns", dns.Server);
        Assert.Equal(0, softExit);
        var softly = DiagRun.Step(soft, "spf.192.0.2.10");
        Assert.Equal("spf_softfail", DiagRun.Code(softly));
        Assert.Contains("\"v=spf1 ip4:198.51.100.0/24 mx ~all\"", (string)softly["fix"]!);
        Assert.Equal("sending address and MX host mx.good.test", (string)DiagRun.Step(soft, "ptr.192.0.2.10")["data"]!["role"]!);
    }

    [Fact]
    public async Task MoreThanTenLookupsAreCountedThroughTheIncludes()
    {
        using var dns = await DnsServer.StartAsync(Zones());
        var (exit, report) = await DiagRun.JsonAsync("dns", "many.spf.test", "--dns", dns.Server);
        Assert.Equal(1, exit);
        var lookups = DiagRun.Step(report, "spf.lookups");
        Assert.Equal("fail", DiagRun.Status(lookups));
        Assert.Equal("spf_too_many_lookups", DiagRun.Code(lookups));
        // 3 includes of 4 lookups each (include, a, mx, exists or include), then a and mx.
        Assert.Equal(14, (int)lookups["data"]!["lookups"]!);
        Assert.Contains("include:i1.spf.test: 4", (string)lookups["saw"]!);
        Assert.Contains("include:i3.spf.test > include:gone.spf.test: gone.spf.test has no SPF record", (string)lookups["data"]!["problems"]![0]!);
    }

    [Fact]
    public async Task APublishedKeyThatIsNotPosternsOwnIsAMismatchWithTheRecordToPublish()
    {
        using var cli = PosternCli.WithConfig(change: c => c["Domains"] = new[] { "example.test", "dkim.test" });
        var own = DkimKeyStore.Generate(Path.Combine(cli.DataDirectory, DkimKeyStore.FolderName), "dkim.test", "s1", DkimKeyType.Ed25519);
        var right = DkimKeyStore.Generate(Path.Combine(cli.DataDirectory, DkimKeyStore.FolderName), "dkim.test", "s2", DkimKeyType.Ed25519);
        var other = DkimSigningKey.Generate("dkim.test", "s1", DkimKeyType.Ed25519).Key;
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            ["dkim.test"] = DnsServer.Zone("dkim.test", $"""
                @   IN MX 10 mx.dkim.test.
                mx  IN A  192.0.2.50
                {other.TxtRecord.ZoneFileLine}
                {right.TxtRecord.ZoneFileLine}
                """),
        });
        var (exit, report) = await DiagRun.JsonAsync("dns", "dkim.test", "--dns", dns.Server, "--config", cli.ConfigFile);
        Assert.Equal(1, exit);
        var mismatch = DiagRun.Step(report, "dkim.s1");
        Assert.Equal("dkim_key_mismatch", DiagRun.Code(mismatch));
        Assert.False((bool)mismatch["data"]!["matches_own_key"]!);
        Assert.Equal(own.Path, (string)mismatch["data"]!["own_key"]!);
        Assert.Contains(own.TxtRecord.ZoneFileLine, (string)mismatch["fix"]!);
        // The selectors come from the key store: s2 was not named, and is checked and matches.
        var match = DiagRun.Step(report, "dkim.s2");
        Assert.Equal("pass", DiagRun.Status(match));
        Assert.True((bool)match["data"]!["matches_own_key"]!);
        Assert.Contains("matches Postern's key", (string)match["saw"]!);
    }

    [Fact]
    public async Task NoDmarcRecordIsAWarningWithAStarterRecord()
    {
        using var dns = await DnsServer.StartAsync(Zones());
        var (exit, report) = await DiagRun.JsonAsync("dns", "narrow.spf.test", "--dns", dns.Server);
        Assert.Equal(0, exit);
        var dmarc = DiagRun.Step(report, "dmarc");
        Assert.Equal("warn", DiagRun.Status(dmarc));
        Assert.Equal("dmarc_missing", DiagRun.Code(dmarc));
        Assert.Contains("_dmarc.narrow.spf.test. IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@narrow.spf.test\"", (string)dmarc["fix"]!);
        Assert.Equal("info", DiagRun.Status(DiagRun.Step(report, "mta_sts")));
    }

    [Fact]
    public async Task ANullMxIsExplainedAndMixingItWithOthersIsAnError()
    {
        using var dns = await DnsServer.StartAsync(Zones());
        var (exit, report) = await DiagRun.JsonAsync("dns", "nullmx.mx.test", "--dns", dns.Server);
        Assert.Equal(0, exit);
        var mx = DiagRun.Step(report, "mx");
        Assert.Equal("mx_null", DiagRun.Code(mx));
        Assert.True((bool)mx["data"]!["null_mx"]!);
        Assert.Contains("RFC 7505", (string)mx["saw"]!);

        var (mixedExit, mixed) = await DiagRun.JsonAsync("dns", "mixed.mx.test", "--dns", dns.Server);
        Assert.Equal(1, mixedExit);
        Assert.Equal("mx_null_mixed", DiagRun.Code(DiagRun.Step(mixed, "mx")));

        // No MX at all: the address of the domain itself (RFC 5321 §5.1), or nothing.
        var (_, bare) = await DiagRun.JsonAsync("dns", "bare.mx.test", "--dns", dns.Server);
        var implicitMx = DiagRun.Step(bare, "mx");
        Assert.Equal("warn", DiagRun.Status(implicitMx));
        Assert.Equal("mx_missing", DiagRun.Code(implicitMx));
        Assert.True((bool)implicitMx["data"]!["implicit"]!);
        Assert.Equal("pass", DiagRun.Status(DiagRun.Step(bare, "mx.bare.mx.test")));

        var (gone, nothing) = await DiagRun.JsonAsync("dns", "nothing.mx.test", "--dns", dns.Server);
        Assert.Equal(1, gone);
        Assert.Equal("domain_not_found", DiagRun.Code(DiagRun.Step(nothing, "mx")));
    }

    [Fact]
    public async Task MxHostsWithoutAnAddressOrBehindAnAliasAreNamed()
    {
        using var dns = await DnsServer.StartAsync(Zones());
        var (exit, report) = await DiagRun.JsonAsync("dns", "hosts.mx.test", "--dns", dns.Server);
        Assert.Equal(1, exit);
        Assert.Equal("mx_host_no_address", DiagRun.Code(DiagRun.Step(report, "mx.gone.mx.test")));
        var alias = DiagRun.Step(report, "mx.alias.mx.test");
        Assert.Equal("mx_cname", DiagRun.Code(alias));
        Assert.Equal("real.mx.test", (string)alias["data"]!["cname"]!);
    }

    [Fact]
    public async Task AReverseNameThatDoesNotPointBackIsAMismatch()
    {
        using var dns = await DnsServer.StartAsync(Zones());
        var (exit, report) = await DiagRun.JsonAsync("dns", "good.test", "--ip", "192.0.2.66", "--dns", dns.Server);
        Assert.Equal(1, exit);
        var ptr = DiagRun.Step(report, "ptr.192.0.2.66");
        Assert.Equal("fail", DiagRun.Status(ptr));
        Assert.Equal("ptr_mismatch", DiagRun.Code(ptr));
        Assert.Contains("liar.good.test resolves to 192.0.2.67", (string)ptr["saw"]!);
        Assert.False((bool)ptr["data"]!["confirmed"]!);

        var (_, none) = await DiagRun.JsonAsync("dns", "good.test", "--ip", "192.0.2.77", "--dns", dns.Server);
        Assert.Equal("ptr_missing", DiagRun.Code(DiagRun.Step(none, "ptr.192.0.2.77")));
    }

    [Fact]
    public async Task TheTextSaysWhatWasTriedAndSeen()
    {
        using var dns = await DnsServer.StartAsync(Zones());
        var (exit, text) = await DiagRun.TextAsync("dns", "narrow.spf.test", "--ip", SendingIp, "--dns", dns.Server);
        Assert.Equal(1, exit);
        Assert.Contains("FAIL  SPF of narrow.spf.test for 192.0.2.25 (spf.192.0.2.25)", text);
        Assert.Contains("tried: evaluating the SPF record of narrow.spf.test", text);
        Assert.Contains("fix:   add ip4:192.0.2.25 to the record", text);
        Assert.Contains("problems found:", text);
        Assert.DoesNotContain("\u001b[", text);
    }

    [Theory]
    [InlineData("dns")]
    [InlineData("dns", "not a domain")]
    [InlineData("dns", "good.test", "--ip", "not-an-ip")]
    [InlineData("dns", "good.test", "--nosuchoption", "x")]
    public async Task UsageErrorsExit2(params string[] args) =>
        Assert.Equal(2, (await DiagRun.TextAsync(args)).Exit);

    [Fact]
    public async Task NoAnswerFromDnsFailsTheCheckRatherThanPassingIt()
    {
        // Nothing answers on port 9: every question times out.
        var (exit, report) = await DiagRun.JsonAsync("dns", "good.test", "--dns", "127.0.0.1:9", "--timeout", "0.5");
        Assert.Equal(1, exit);
        var mx = DiagRun.Step(report, "mx");
        Assert.Equal("fail", DiagRun.Status(mx));
        Assert.Contains("dns", DiagRun.Code(mx));
    }
}
