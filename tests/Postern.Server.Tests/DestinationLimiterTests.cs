using Postern.Server.Delivery;

namespace Postern.Server.Tests;

public sealed class DestinationLimiterTests
{
    [Fact]
    public void AtMostTheLimitPerDestinationAndOthersUnaffected()
    {
        var limiter = new DestinationLimiter(2);
        Assert.True(limiter.TryEnter("far.example"));
        Assert.True(limiter.TryEnter("FAR.example")); // domains compare without case
        Assert.False(limiter.TryEnter("far.example"));
        Assert.True(limiter.TryEnter("other.example"));
        Assert.Equal(2, limiter.InUse("far.example"));
        limiter.Exit("far.example");
        Assert.True(limiter.TryEnter("far.example"));
    }

    [Fact]
    public async Task AWaitingDeliveryIsWokenWhenASlotIsGivenBack()
    {
        var limiter = new DestinationLimiter(1);
        Assert.True(limiter.TryEnter("far.example"));
        var first = limiter.WhenFreeAsync("far.example");
        Assert.False(first.IsCompleted);
        limiter.Exit("far.example");
        await first.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(limiter.WhenFreeAsync("idle.example").IsCompleted);
    }

    [Fact]
    public void EntriesGoAwayWhenIdle()
    {
        var limiter = new DestinationLimiter(1);
        for (var i = 0; i < 1000; i++)
        {
            Assert.True(limiter.TryEnter($"d{i}.example"));
            limiter.Exit($"d{i}.example");
        }
        Assert.Equal(0, limiter.Tracked);
        Assert.True(limiter.TryEnter("d1.example"));
        Assert.Equal(1, limiter.Tracked);
    }

    [Fact]
    public async Task WhenNothingIsUnderWayEveryWaiterIsWoken()
    {
        // The first waiter woken may not need the slot any more (its recipient was done meanwhile):
        // the others must not depend on it.
        var limiter = new DestinationLimiter(2);
        Assert.True(limiter.TryEnter("far.example"));
        Assert.True(limiter.TryEnter("far.example"));
        var waiters = Enumerable.Range(0, 3).Select(_ => limiter.WhenFreeAsync("far.example")).ToList();
        limiter.Exit("far.example");
        Assert.Equal(1, waiters.Count(w => w.IsCompleted)); // one slot free: one woken
        limiter.Exit("far.example");
        await Task.WhenAll(waiters).WaitAsync(TimeSpan.FromSeconds(5)); // nothing under way: all woken
        Assert.Equal(0, limiter.Tracked);
    }

    [Fact]
    public async Task EachRefusalLowersTheLimitUntilItIsForgotten()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var limiter = new DestinationLimiter(8, time);
        for (var i = 0; i < 4; i++)
        {
            Assert.True(limiter.TryEnter("example.net"));
        }
        // Four under way, a fifth refused: four at most; two more refusals: two at most.
        limiter.Crowded("example.net");
        Assert.Equal(4, limiter.LimitFor("example.net"));
        limiter.Exit("example.net");
        limiter.Exit("example.net");
        limiter.Crowded("example.net");
        limiter.Crowded("example.net");
        Assert.Equal(1, limiter.LimitFor("example.net"));
        Assert.False(limiter.TryEnter("example.net"));
        var woken = limiter.WhenFreeAsync("example.net");
        Assert.False(woken.IsCompleted);
        limiter.Exit("example.net");
        limiter.Exit("example.net");
        await woken.WaitAsync(TimeSpan.FromSeconds(5));
        // Across bursts (the entry went when idle), until it is forgotten.
        Assert.Equal(0, limiter.Tracked);
        Assert.True(limiter.TryEnter("example.net"));
        Assert.False(limiter.TryEnter("example.net"));
        limiter.Exit("example.net");
        time.Advance(DestinationLimiter.CrowdedFor);
        Assert.Equal(8, limiter.LimitFor("example.net"));
        Assert.Equal(8, limiter.LimitFor("other.example"));
    }
}
