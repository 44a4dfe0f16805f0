using System.Net;
using Postern.MailAuth.Spf;

namespace Postern.MailAuth.Tests.Spf;

/// <summary>
/// The MAIL FROM and HELO identities (RFC 7208 §2.3, §2.4), IPv4-mapped clients (§5), and what an
/// outcome says besides its result: the deciding record and term, the explanation, the reason.
/// </summary>
public sealed class SpfIdentitiesAndOutcome
{
    private static readonly IPAddress Client = IPAddress.Parse("192.0.2.1");

    private static SpfEvaluator Evaluator(ZoneDns zone) => new(zone, "receiver.example");

    [Fact]
    public async Task NullReversePathChecksPostmasterAtTheHeloName()
    {
        var zone = new ZoneDns();
        zone["mail.example.net"].Txt.Add("v=spf1 -all exp=why.example.net");
        zone["why.example.net"].Txt.Add("%{s} from %{h}");
        var outcome = await Evaluator(zone).CheckMailFromAsync(Client, "", "mail.example.net");
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.Equal("mail.example.net", outcome.Domain);
        Assert.Equal("postmaster@mail.example.net", outcome.Sender);
        Assert.Equal("postmaster@mail.example.net from mail.example.net", outcome.Explanation);
    }

    [Fact]
    public async Task EmptyLocalPartBecomesPostmaster()
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 -all");
        var outcome = await Evaluator(zone).CheckMailFromAsync(Client, "@example.com", "mail.example.net");
        Assert.Equal("postmaster@example.com", outcome.Sender);
    }

    [Theory]
    [InlineData("[192.0.2.1]")]
    [InlineData("localhost")]
    [InlineData("a..example.com")]
    [InlineData("")]
    public async Task HeloThatIsNoDomainIsNoneWithoutAsking(string helo)
    {
        var zone = new ZoneDns();
        var outcome = await Evaluator(zone).CheckHeloAsync(Client, helo);
        Assert.Equal(AuthResult.None, outcome.Result);
        Assert.Equal(0, zone.Queries);
    }

    [Fact]
    public async Task InternationalizedDomainIsAskedForInALabels()
    {
        var zone = new ZoneDns();
        zone["xn--bcher-kva.example"].Txt.Add("v=spf1 ip4:192.0.2.1 -all");
        Assert.Equal(AuthResult.Pass, (await Evaluator(zone).CheckMailFromAsync(Client, "anna@bücher.example", "mail.example.net")).Result);
    }

    [Fact]
    public async Task Ipv4MappedClientIsIpv4()
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 ip6:::/0 ip4:192.0.2.1 -all exp=why.example.com");
        zone["why.example.com"].Txt.Add("%{i} %{v} %{c}");
        var mapped = IPAddress.Parse("::ffff:192.0.2.1");
        var outcome = await Evaluator(zone).CheckMailFromAsync(mapped, "a@example.com", "mail.example.net");
        Assert.Equal(AuthResult.Pass, outcome.Result);
        Assert.Equal("ip4:192.0.2.1", outcome.DecidingTerm);

        zone["example.com"].Txt[0] = "v=spf1 -all exp=why.example.com";
        Assert.Equal("192.0.2.1 in-addr 192.0.2.1", (await Evaluator(zone).CheckMailFromAsync(mapped, "a@example.com", "mail.example.net")).Explanation);
    }

    [Theory]
    [InlineData("v=spf1 ip6:::ffff:192.0.2.1 -all", AuthResult.Pass)]
    [InlineData("v=spf1 ip6:::ffff:192.0.2.0/120 -all", AuthResult.Pass)]
    [InlineData("v=spf1 ip6:::ffff:0:0/95 -all", AuthResult.Fail)]
    [InlineData("v=spf1 ip6:::/0 -all", AuthResult.Fail)]
    [InlineData("v=spf1 ip6:::192.0.2.1 -all", AuthResult.Fail)]
    public async Task Ipv6NetworksMatchIpv4ClientsOnlyWhenIpv4Mapped(string record, AuthResult expected)
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add(record);
        Assert.Equal(expected, (await Evaluator(zone).CheckMailFromAsync(Client, "a@example.com", "mail.example.net")).Result);
    }

    [Fact]
    public async Task IncludeThatPassesIsTheDecidingTerm()
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 include:_spf.example.net -all");
        zone["_spf.example.net"].Txt.Add("v=spf1 ip4:192.0.2.0/24 -all");
        var outcome = await Evaluator(zone).CheckMailFromAsync(Client, "a@example.com", "mail.example.net");
        Assert.Equal(AuthResult.Pass, outcome.Result);
        Assert.Equal("example.com", outcome.DecidingDomain);
        Assert.Equal("v=spf1 include:_spf.example.net -all", outcome.DecidingRecord);
        Assert.Equal("include:_spf.example.net", outcome.DecidingTerm);
        Assert.Contains("ip4:192.0.2.0/24", outcome.Reason);
        Assert.Null(outcome.Explanation);
    }

    [Fact]
    public async Task RedirectTargetDecidesAndExplains()
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 exp=old.example.com redirect=_spf.example.net");
        zone["_spf.example.net"].Txt.Add("v=spf1 -all exp=new.example.net");
        zone["old.example.com"].Txt.Add("old");
        zone["new.example.net"].Txt.Add("%{d} says no to %{o}");
        var outcome = await Evaluator(zone).CheckMailFromAsync(Client, "a@example.com", "mail.example.net");
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.Equal("_spf.example.net", outcome.DecidingDomain);
        Assert.Equal("-all", outcome.DecidingTerm);
        Assert.Equal("_spf.example.net says no to example.com", outcome.Explanation);
    }

    [Fact]
    public async Task SoftFailHasNoExplanation()
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 ~all exp=why.example.com");
        zone["why.example.com"].Txt.Add("no");
        var outcome = await Evaluator(zone).CheckMailFromAsync(Client, "a@example.com", "mail.example.net");
        Assert.Equal(AuthResult.SoftFail, outcome.Result);
        Assert.Null(outcome.Explanation);
    }

    [Fact]
    public async Task ReasonIsOnePrintableLine()
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 a:foo\r\n.example.com -all");
        var outcome = await Evaluator(zone).CheckMailFromAsync(Client, "a@example.com", "mail.example.net");
        Assert.Equal(AuthResult.PermError, outcome.Result);
        Assert.All(outcome.Reason, c => Assert.InRange(c, ' ', '~'));
    }

    [Fact]
    public async Task ExplanationMayUseTheValidatedName()
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 -all exp=why.example.com");
        zone["why.example.com"].Txt.Add("%{p} at %{r} %{t}");
        zone[ZoneDns.ReverseName(Client)].Ptr.AddRange(["other.example.org", "mx.example.com"]);
        zone["other.example.org"].A.Add(Client);
        zone["mx.example.com"].A.Add(Client);
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.FromUnixTimeSeconds(1_000_000_000));
        var outcome = await new SpfEvaluator(zone, "receiver.example", time).CheckMailFromAsync(Client, "a@example.com", "mail.example.net");
        // RFC 7208 §7.3: a validated subdomain of <domain> is preferred to any other validated name.
        Assert.Equal("mx.example.com at receiver.example 1000000000", outcome.Explanation);
    }

    [Theory]
    [InlineData("v=spf1", true)]
    [InlineData("v=spf1 ", true)]
    [InlineData("V=SPF1 -ALL", true)]
    [InlineData("v=spf10", false)]
    [InlineData("v=spf1mx", false)]
    [InlineData("spf1 -all", false)]
    public void WhichTxtRecordsAreSpf(string txt, bool spf) => Assert.Equal(spf, SpfRecord.IsSpfRecord(txt));

    [Theory]
    [InlineData("v=spf1 a mx ptr all", true)]
    [InlineData("v=spf1 a/24//64 mx:example.com/0 ip4:10.0.0.0/8 ip6:2001:db8::/32 -all", true)]
    [InlineData("v=spf1 +a -mx ~ptr ?exists:%{i}.example.com", true)]
    [InlineData("v=spf1 foo.bar-baz_q=%{d} -all", true)]     // unknown modifier: ignored
    [InlineData("v=spf1 INCLUDE:example.com", true)]          // names are case-insensitive
    [InlineData("v=spf1 ip4:1.2.3.4 -all moo", false)]        // an error anywhere
    [InlineData("v=spf1 redirect:example.com", false)]
    [InlineData("v=spf1 exp=a.example.com exp=b.example.com", false)]
    [InlineData("v=spf1 redirect=a.example.com redirect=a.example.com", false)]
    [InlineData("v=spf1 exp=", false)]
    [InlineData("v=spf1 1up=foo", false)]
    [InlineData("v=spf1 =all", false)]
    [InlineData("v=spf1 ip4:01.2.3.4", false)]
    [InlineData("v=spf1 ip4:1.2.3.4/032", false)]
    [InlineData("v=spf1 ip4:1.2.3.4/33", false)]
    [InlineData("v=spf1 ip6:::1/129", false)]
    [InlineData("v=spf1 ip6:1.2.3.4", false)]
    [InlineData("v=spf1 ip6:::1%eth0", false)]
    [InlineData("v=spf1 a/33", false)]
    [InlineData("v=spf1 a/24/64", false)]
    [InlineData("v=spf1 ptr/24", false)]
    [InlineData("v=spf1 include", false)]
    [InlineData("v=spf1 exists:", false)]
    [InlineData("v=spf1 -all.", false)]
    [InlineData("v=spf1 a\tmx", false)]
    public void RecordSyntax(string record, bool valid) => Assert.Equal(valid, SpfRecord.TryParse(record, out _, out _));
}
