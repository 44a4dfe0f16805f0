using System.Net;
using Microsoft.Extensions.Time.Testing;
using Postern.MailAuth.Dns;
using Postern.MailAuth.Spf;

namespace Postern.MailAuth.Tests.Spf;

/// <summary>
/// The limits of RFC 7208 §4.6.4, each at the limit and one past it: 10 DNS-querying terms (counted as
/// they are evaluated, across include and redirect), 2 void lookups, 10 MX hosts, the first 10 PTR
/// names, no limit on A records, and the elapsed-time limit.
/// </summary>
public sealed class SpfLookupLimits
{
    private static readonly IPAddress Client = IPAddress.Parse("192.0.2.1");

    private static async Task<SpfOutcome> Check(ZoneDns zone, string domain = "example.com", TimeProvider? time = null) =>
        await new SpfEvaluator(zone, "receiver.example", time).CheckMailFromAsync(Client, $"alice@{domain}", "mail.example.net");

    // n "a:hN.example.net" terms whose names exist but do not match, then the client's ip4.
    private static ZoneDns WithATerms(int n)
    {
        var zone = new ZoneDns();
        var terms = Enumerable.Range(1, n).Select(i => $"a:h{i}.example.net");
        zone["example.com"].Txt.Add($"v=spf1 {string.Join(' ', terms)} ip4:192.0.2.1 -all");
        for (var i = 1; i <= n; i++)
        {
            zone[$"h{i}.example.net"].A.Add(IPAddress.Parse("198.51.100.1"));
        }
        return zone;
    }

    [Fact]
    public async Task TenDnsTermsAreAllowed() => Assert.Equal(AuthResult.Pass, (await Check(WithATerms(10))).Result);

    [Fact]
    public async Task TheEleventhDnsTermIsPermErrorAndIsNotAsked()
    {
        var zone = WithATerms(11);
        var outcome = await Check(zone);
        Assert.Equal(AuthResult.PermError, outcome.Result);
        Assert.Equal("a:h11.example.net", outcome.DecidingTerm);
        Assert.Contains("more than 10 DNS-querying", outcome.Reason);
        Assert.Equal(11, zone.Queries); // the TXT record and h1 to h10
    }

    [Fact]
    public async Task TermsAfterAMatchAreNotCounted()
    {
        // 11 DNS terms in the record, but the first matches.
        var zone = WithATerms(11);
        zone["h1.example.net"].A.Add(Client);
        Assert.Equal(AuthResult.Pass, (await Check(zone)).Result);
    }

    [Fact]
    public async Task IncludeAndRedirectCountWithTheTermsInside()
    {
        var zone = new ZoneDns();
        // include (1) + 8 a (9) in the included record, then redirect (10), then the target's a (11).
        zone["example.com"].Txt.Add("v=spf1 include:inc.example.net redirect=target.example.net");
        zone["inc.example.net"].Txt.Add("v=spf1 a a a a a a a a");
        zone["inc.example.net"].A.Add(IPAddress.Parse("198.51.100.1"));
        zone["target.example.net"].Txt.Add("v=spf1 a ip4:192.0.2.1");
        zone["target.example.net"].A.Add(IPAddress.Parse("198.51.100.2"));
        Assert.Equal(AuthResult.PermError, (await Check(zone)).Result);

        zone["inc.example.net"].Txt[0] = "v=spf1 a a a a a a a";
        Assert.Equal(AuthResult.Pass, (await Check(zone)).Result);
    }

    [Fact]
    public async Task RedirectLoopEndsInPermError()
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 redirect=example.com");
        var outcome = await Check(zone);
        Assert.Equal(AuthResult.PermError, outcome.Result);
        Assert.Equal(11, zone.Queries);
    }

    [Fact]
    public async Task IncludeLoopEndsInPermError()
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 include:other.example.net");
        zone["other.example.net"].Txt.Add("v=spf1 include:example.com");
        Assert.Equal(AuthResult.PermError, (await Check(zone)).Result);
    }

    [Theory]
    [InlineData(2, AuthResult.Neutral)]
    [InlineData(3, AuthResult.PermError)]
    public async Task TwoVoidLookupsAreAllowed(int voids, AuthResult expected)
    {
        var zone = new ZoneDns();
        // NXDOMAIN, then NODATA (the name exists without A records), alternately.
        zone["example.com"].Txt.Add("v=spf1 " + string.Join(' ', Enumerable.Range(1, voids).Select(i => $"a:v{i}.example.net")) + " ?all");
        zone["v2.example.net"].Txt.Add("not an address");
        Assert.Equal(expected, (await Check(zone)).Result);
    }

    [Fact]
    public async Task ExplanationLookupIsNotAVoidLookup()
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 a:v1.example.net a:v2.example.net exp=nothing.example.net -all");
        var outcome = await Check(zone);
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.Equal(SpfEvaluator.DefaultExplanation("example.com", Client), outcome.Explanation);
    }

    private static ZoneDns WithMxHosts(int hosts, int matchingHost)
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 mx -all");
        for (var i = 1; i <= hosts; i++)
        {
            zone["example.com"].Mx.Add(new MxRecord(i, $"mx{i}.example.com"));
            zone[$"mx{i}.example.com"].A.Add(i == matchingHost ? Client : IPAddress.Parse("198.51.100.1"));
        }
        return zone;
    }

    [Fact]
    public async Task TenMxHostsAreLookedUp() => Assert.Equal(AuthResult.Pass, (await Check(WithMxHosts(10, matchingHost: 10))).Result);

    [Fact]
    public async Task AnEleventhMxHostToLookUpIsPermError()
    {
        var outcome = await Check(WithMxHosts(11, matchingHost: 11));
        Assert.Equal(AuthResult.PermError, outcome.Result);
        Assert.Contains("more than 10 MX hosts", outcome.Reason);
    }

    [Fact]
    public async Task MxHostsAreLookedUpOnlyUntilOneMatches() =>
        // RFC 7208 §4.6.4 limits the address lookups made; eleven hosts with a match at the eighth make eight.
        Assert.Equal(AuthResult.Pass, (await Check(WithMxHosts(11, matchingHost: 8))).Result);

    [Fact]
    public async Task OnlyTheFirstTenPtrNamesCount()
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 ptr -all");
        var reverse = zone[ZoneDns.ReverseName(Client)];
        for (var i = 1; i <= 11; i++)
        {
            reverse.Ptr.Add($"h{i}.example.com");
        }
        zone["h11.example.com"].A.Add(Client);
        Assert.Equal(AuthResult.Fail, (await Check(zone)).Result);

        zone["h10.example.com"].A.Add(Client);
        Assert.Equal(AuthResult.Pass, (await Check(zone)).Result);
    }

    [Fact]
    public async Task ARecordsHaveNoLimit()
    {
        var zone = new ZoneDns();
        zone["example.com"].Txt.Add("v=spf1 a -all");
        for (var i = 1; i <= 30; i++)
        {
            zone["example.com"].A.Add(IPAddress.Parse($"198.51.100.{i}"));
        }
        zone["example.com"].A.Add(Client);
        Assert.Equal(AuthResult.Pass, (await Check(zone)).Result);
    }

    [Fact]
    public async Task PastTheTimeLimitNoQuestionIsAskedAndTheResultIsTempError()
    {
        var time = new FakeTimeProvider();
        var zone = WithATerms(10);
        // Every answer takes 3 s: by the eighth question 21 s have gone.
        var slow = new SlowDns(zone, time, TimeSpan.FromSeconds(3));
        var outcome = await new SpfEvaluator(slow, "receiver.example", time).CheckMailFromAsync(Client, "alice@example.com", "mail.example.net");
        Assert.Equal(AuthResult.TempError, outcome.Result);
        Assert.Contains("longer than 20 s", outcome.Reason);
        Assert.Equal(7, zone.Queries);
    }

    [Fact]
    public async Task AQuestionCutShortByTheTimeLimitIsTempError()
    {
        var time = new FakeTimeProvider();
        var check = new SpfEvaluator(new HangingDns(), "receiver.example", time).CheckMailFromAsync(Client, "alice@example.com", "mail.example.net");
        time.Advance(TimeSpan.FromSeconds(21));
        Assert.Equal(AuthResult.TempError, (await check).Result);
    }

    [Fact]
    public async Task TheTimeLimitCanBeRaised()
    {
        var time = new FakeTimeProvider();
        var zone = WithATerms(10);
        var slow = new SlowDns(zone, time, TimeSpan.FromSeconds(3));
        var evaluator = new SpfEvaluator(slow, "receiver.example", time) { TimeLimit = TimeSpan.FromSeconds(60) };
        Assert.Equal(AuthResult.Pass, (await evaluator.CheckMailFromAsync(Client, "alice@example.com", "mail.example.net")).Result);
    }

    [Fact]
    public async Task CancellationByTheCallerThrows()
    {
        using var cancel = new CancellationTokenSource();
        var check = new SpfEvaluator(new HangingDns(), "receiver.example").CheckMailFromAsync(Client, "alice@example.com", "mail.example.net", cancel.Token);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => check);
    }

    /// <summary>A DNS whose every answer takes a while on the fake clock.</summary>
    private sealed class SlowDns(IMailAuthDns inner, FakeTimeProvider time, TimeSpan delay) : IMailAuthDns
    {
        private Task<T> Later<T>(Func<Task<T>> ask)
        {
            time.Advance(delay);
            return ask();
        }

        public Task<DnsAnswer<string>> TxtAsync(string name, CancellationToken cancellationToken = default) => Later(() => inner.TxtAsync(name, cancellationToken));

        public Task<DnsAnswer<IPAddress>> AAsync(string name, CancellationToken cancellationToken = default) => Later(() => inner.AAsync(name, cancellationToken));

        public Task<DnsAnswer<IPAddress>> AaaaAsync(string name, CancellationToken cancellationToken = default) => Later(() => inner.AaaaAsync(name, cancellationToken));

        public Task<DnsAnswer<MxRecord>> MxAsync(string name, CancellationToken cancellationToken = default) => Later(() => inner.MxAsync(name, cancellationToken));

        public Task<DnsAnswer<string>> PtrAsync(IPAddress address, CancellationToken cancellationToken = default) => Later(() => inner.PtrAsync(address, cancellationToken));
    }

    /// <summary>A DNS that never answers, until the question is cancelled.</summary>
    private sealed class HangingDns : IMailAuthDns
    {
        private static async Task<DnsAnswer<T>> Never<T>(CancellationToken cancellationToken)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            throw new InvalidOperationException("unreachable");
        }

        public Task<DnsAnswer<string>> TxtAsync(string name, CancellationToken cancellationToken = default) => Never<string>(cancellationToken);

        public Task<DnsAnswer<IPAddress>> AAsync(string name, CancellationToken cancellationToken = default) => Never<IPAddress>(cancellationToken);

        public Task<DnsAnswer<IPAddress>> AaaaAsync(string name, CancellationToken cancellationToken = default) => Never<IPAddress>(cancellationToken);

        public Task<DnsAnswer<MxRecord>> MxAsync(string name, CancellationToken cancellationToken = default) => Never<MxRecord>(cancellationToken);

        public Task<DnsAnswer<string>> PtrAsync(IPAddress address, CancellationToken cancellationToken = default) => Never<string>(cancellationToken);
    }
}
