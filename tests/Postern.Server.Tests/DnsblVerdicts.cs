using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Postern.Server.Configuration;
using Postern.Server.Limits;

namespace Postern.Server.Tests;

/// <summary>
/// The DNSBL check without a DNS server: scores, the deadline, the cache and its bound, and the
/// rate-limited log of a failing list, with a fake lookup and an injected clock.
/// </summary>
public sealed class DnsblVerdicts
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    private static DnsblOptions Options(TimeSpan? cacheTime = null) => new()
    {
        Lists = [new() { Zone = "bl.test", Weight = 2 }, new() { Zone = "bl2.test", Weight = 1 }],
        AllowLists = [new() { Zone = "wl.test", Weight = 5 }],
        Threshold = 2,
        Timeout = Timeout,
        CacheTime = cacheTime ?? TimeSpan.FromMinutes(10),
    };

    /// <summary>Answers from a table of names; counts the questions.</summary>
    private sealed class FakeDns
    {
        public ConcurrentDictionary<string, string> Records { get; } = new(StringComparer.Ordinal);
        public ConcurrentDictionary<string, Func<CancellationToken, Task<IReadOnlyList<IPAddress>>>> Special { get; } = new(StringComparer.Ordinal);
        public int Questions;

        public Task<IReadOnlyList<IPAddress>> LookupAsync(string name, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Questions);
            foreach (var (zone, special) in Special)
            {
                if (name.EndsWith("." + zone, StringComparison.Ordinal))
                {
                    return special(cancellationToken);
                }
            }
            return Task.FromResult<IReadOnlyList<IPAddress>>(Records.TryGetValue(name, out var a) ? [IPAddress.Parse(a)] : []);
        }
    }

    private static (Dnsbl Dnsbl, FakeDns Dns, ListLogger Log, FakeTimeProvider Time) Make(DnsblOptions? options = null, int capacity = 100_000)
    {
        var dns = new FakeDns();
        dns.Records["2.0.0.127.bl.test"] = "127.0.0.2";
        dns.Records["3.0.0.127.bl2.test"] = "127.0.0.3";
        dns.Records["4.0.0.127.bl.test"] = "127.0.0.2";
        dns.Records["4.0.0.127.wl.test"] = "127.0.0.4";
        dns.Records["5.0.0.127.bl.test"] = "127.0.0.2";
        dns.Records["5.0.0.127.bl2.test"] = "127.0.0.3";
        var log = new ListLogger();
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        return (new Dnsbl(options ?? Options(), dns.LookupAsync, log, time, capacity), dns, log, time);
    }

    private static Task<DnsblVerdict> Check(Dnsbl dnsbl, string ip) => dnsbl.CheckAsync(IPAddress.Parse(ip)).WaitAsync(TimeSpan.FromSeconds(10));

    [Fact]
    public async Task TheScoreIsBlockWeightsLessAllowWeights()
    {
        var (dnsbl, _, _, _) = Make();

        var listed = await Check(dnsbl, "127.0.0.2");
        Assert.True(listed.Refused);
        Assert.Equal(2, listed.Score);
        Assert.Equal("bl.test", listed.ListedZones);
        Assert.Equal("listed at bl.test (127.0.0.2, weight 2); score 2, threshold 2", listed.Describe());

        var belowThreshold = await Check(dnsbl, "127.0.0.3");
        Assert.False(belowThreshold.Refused);
        Assert.Equal(1, belowThreshold.Score);

        var allowed = await Check(dnsbl, "127.0.0.4");
        Assert.False(allowed.Refused);
        Assert.Equal(-3, allowed.Score);
        Assert.Equal("wl.test", Assert.Single(allowed.Allowed).Zone);
        Assert.Contains("allowed by wl.test (127.0.0.4, weight 5)", allowed.Describe(), StringComparison.Ordinal);

        var both = await Check(dnsbl, "127.0.0.5");
        Assert.True(both.Refused);
        Assert.Equal(3, both.Score);
        Assert.Equal("bl.test, bl2.test", both.ListedZones);

        var clean = await Check(dnsbl, "127.0.0.1");
        Assert.False(clean.Refused);
        Assert.Equal(0, clean.Score);
        Assert.Empty(clean.Listed);
        Assert.Empty(clean.Failed);
    }

    [Fact]
    public async Task ASlowListIsSkippedAtTheDeadlineAndTheOthersStillCount()
    {
        var (dnsbl, dns, log, time) = Make();
        // bl2.test never answers, and ignores cancellation too (as a DNS library might).
        dns.Special["bl2.test"] = _ => new TaskCompletionSource<IReadOnlyList<IPAddress>>().Task;
        var check = dnsbl.CheckAsync(IPAddress.Parse("127.0.0.2"));
        await Task.Delay(100);
        Assert.False(check.IsCompleted, "the check waits for every list until the deadline");
        time.Advance(Timeout);
        var verdict = await check.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(verdict.Refused); // bl.test answered, and its weight reaches the threshold alone
        Assert.Equal(["bl2.test"], verdict.Failed);
        var line = Assert.Single(log.Lines, l => l.Contains("event=dnsbl_failed", StringComparison.Ordinal));
        Assert.Contains("zone=bl2.test ip=127.0.0.2 reason=no answer within Dnsbl.Timeout (2 s) suppressed=0", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WhenEveryListTimesOutTheClientIsNotRefused()
    {
        var (dnsbl, dns, _, time) = Make();
        foreach (var zone in new[] { "bl.test", "bl2.test", "wl.test" })
        {
            dns.Special[zone] = async ct =>
            {
                await Task.Delay(System.Threading.Timeout.Infinite, ct);
                return [];
            };
        }
        var check = dnsbl.CheckAsync(IPAddress.Parse("127.0.0.2"));
        time.Advance(Timeout);
        var verdict = await check.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(verdict.Refused);
        Assert.Equal(["bl.test", "bl2.test", "wl.test"], verdict.Failed);
    }

    [Fact]
    public async Task AFailingListIsLoggedOnceAMinute()
    {
        var (dnsbl, dns, log, time) = Make();
        dns.Special["bl2.test"] = _ => Task.FromException<IReadOnlyList<IPAddress>>(new IOException("DNS answered ServerFailure"));
        for (var i = 10; i < 20; i++)
        {
            var verdict = await Check(dnsbl, $"192.0.2.{i}");
            Assert.Equal(["bl2.test"], verdict.Failed);
        }
        Assert.Single(log.Lines, l => l.Contains("event=dnsbl_failed", StringComparison.Ordinal) && l.Contains("reason=DNS answered ServerFailure suppressed=0", StringComparison.Ordinal));
        time.Advance(TimeSpan.FromMinutes(1));
        await Check(dnsbl, "192.0.2.99");
        var lines = log.Lines.Where(l => l.Contains("event=dnsbl_failed", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, lines.Count);
        Assert.Contains("ip=192.0.2.99 reason=DNS answered ServerFailure suppressed=9", lines[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task AVerdictIsKeptForTheCacheTimeAndShared()
    {
        var (dnsbl, dns, _, time) = Make();
        var gate = new TaskCompletionSource<IReadOnlyList<IPAddress>>();
        dns.Special["bl2.test"] = _ => gate.Task;
        // Three connections at once from one address: one lookup (three questions, one per list).
        var checks = Enumerable.Range(0, 3).Select(_ => dnsbl.CheckAsync(IPAddress.Parse("127.0.0.2"))).ToList();
        gate.SetResult([]);
        foreach (var c in checks)
        {
            Assert.True((await c.WaitAsync(TimeSpan.FromSeconds(10))).Refused);
        }
        Assert.Equal(3, dns.Questions);
        // Kept: even a delisting is not seen until the cache time has passed.
        dns.Records.TryRemove("2.0.0.127.bl.test", out _);
        time.Advance(TimeSpan.FromMinutes(9));
        Assert.True((await Check(dnsbl, "127.0.0.2")).Refused);
        Assert.Equal(3, dns.Questions);
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.False((await Check(dnsbl, "127.0.0.2")).Refused);
        Assert.Equal(6, dns.Questions);
    }

    [Fact]
    public async Task AVerdictWithAFailedListIsKeptOneMinute()
    {
        var (dnsbl, dns, _, time) = Make();
        dns.Special["wl.test"] = _ => Task.FromException<IReadOnlyList<IPAddress>>(new IOException("unreachable"));
        Assert.True((await Check(dnsbl, "127.0.0.4")).Refused); // the allow list that would have saved it failed
        time.Advance(TimeSpan.FromSeconds(59));
        await Check(dnsbl, "127.0.0.4");
        Assert.Equal(3, dns.Questions);
        dns.Special.TryRemove("wl.test", out _);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False((await Check(dnsbl, "127.0.0.4")).Refused);
        Assert.Equal(6, dns.Questions);
    }

    [Fact]
    public async Task TheCacheStaysBoundedUnderAFloodOfAddresses()
    {
        var (dnsbl, _, _, _) = Make(capacity: 1000);
        for (var i = 0; i < 5_000; i++)
        {
            await Check(dnsbl, new IPAddress(BitConverter.GetBytes(0x0a000000 + i)).ToString());
        }
        Assert.InRange(dnsbl.Count, 1, 1000);
        // IPv6 addresses each count (a list answers per address), and stay within the bound too.
        for (var i = 0; i < 2_000; i++)
        {
            await Check(dnsbl, $"2001:db8::{i:x}");
        }
        Assert.InRange(dnsbl.Count, 1, 1000);
    }

    /// <summary>Collects the lines as the key=value log would show them.</summary>
    private sealed class ListLogger : ILogger
    {
        private readonly ConcurrentQueue<string> _lines = new();

        public IReadOnlyCollection<string> Lines => _lines;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _lines.Enqueue($"event={eventId.Name} {formatter(state, exception)}");
    }
}
