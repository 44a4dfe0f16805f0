using System.Net;
using Microsoft.Extensions.Time.Testing;
using Postern.Server.Limits;

namespace Postern.Server.Tests;

public sealed class RateCountersTests
{
    [Fact]
    public void LimitPerWindowSlidesWithTheClock()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var counters = new RateCounters<string>(time, TimeSpan.FromMinutes(1));
        for (var i = 0; i < 10; i++)
        {
            Assert.True(counters.TryAdd("a", 10));
        }
        Assert.False(counters.TryAdd("a", 10));
        Assert.True(counters.TryAdd("b", 10)); // keys are separate
        // Half a minute into the next window, half of the previous window still counts: 5 more.
        time.Advance(TimeSpan.FromSeconds(90));
        for (var i = 0; i < 5; i++)
        {
            Assert.True(counters.TryAdd("a", 10));
        }
        Assert.False(counters.TryAdd("a", 10));
        // Two windows later nothing is left.
        time.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(0, counters.Estimate("a"));
        Assert.True(counters.TryAdd("a", 10, amount: 10));
        Assert.True(counters.TryAdd("z", 0, amount: 1_000_000)); // 0: no limit
    }

    [Fact]
    public void TheTableStaysBoundedUnderAFloodOfFreshKeys()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var counters = new RateCounters<int>(time, TimeSpan.FromHours(1), capacity: 1000);
        for (var i = 0; i < 100_000; i++)
        {
            counters.TryAdd(i, 5);
        }
        Assert.InRange(counters.Count, 1, 1000);
    }

    [Fact]
    public void IPv6CountsByItsSlash64AndIPv4ByAddress()
    {
        Assert.Equal(ClientKey.For(IPAddress.Parse("2001:db8:1:2::1")), ClientKey.For(IPAddress.Parse("2001:db8:1:2:ffff:ffff:ffff:ffff")));
        Assert.NotEqual(ClientKey.For(IPAddress.Parse("2001:db8:1:2::1")), ClientKey.For(IPAddress.Parse("2001:db8:1:3::1")));
        Assert.Equal("2001:db8:1:2::/64", ClientKey.Describe(ClientKey.For(IPAddress.Parse("2001:db8:1:2::1"))));
        Assert.NotEqual(ClientKey.For(IPAddress.Parse("192.0.2.1")), ClientKey.For(IPAddress.Parse("192.0.2.2")));
        Assert.Equal(IPAddress.Parse("192.0.2.1"), ClientKey.For(IPAddress.Parse("::ffff:192.0.2.1")));
    }

    [Fact]
    public void ConcurrentConnectionsCountAWholeSlash64AsOneClient()
    {
        var limiter = new ConnectionLimiter(100, 2);
        Assert.Equal(ConnectionLimiter.Result.Accepted, limiter.TryAcquire(IPAddress.Parse("2001:db8::1")));
        Assert.Equal(ConnectionLimiter.Result.Accepted, limiter.TryAcquire(IPAddress.Parse("2001:db8::2")));
        Assert.Equal(ConnectionLimiter.Result.TooManyFromIp, limiter.TryAcquire(IPAddress.Parse("2001:db8::3")));
        Assert.Equal(ConnectionLimiter.Result.Accepted, limiter.TryAcquire(IPAddress.Parse("2001:db8:0:1::1")));
        limiter.Release(IPAddress.Parse("2001:db8::2"));
        Assert.Equal(ConnectionLimiter.Result.Accepted, limiter.TryAcquire(IPAddress.Parse("2001:db8::3")));
    }
}
