using Microsoft.Extensions.Time.Testing;
using Postern.Server.Delivery;
using Postern.Server.Queue;

namespace Postern.Server.Tests;

/// <summary>
/// The one retry schedule: the wait doubles from Delivery.RetryInitialDelay up to
/// Delivery.RetryMaxDelay, shortened by a jitter fixed per message and attempt so that messages
/// deferred together come back spread out; one timer brings each message back when it is due.
/// </summary>
public sealed class RetryScheduleSpreadsAndWakes
{
    private static readonly TimeSpan Initial = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan Max = TimeSpan.FromHours(4);
    private static readonly DateTimeOffset Start = new(2026, 12, 7, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public void TheWaitDoublesUpToTheMaximum()
    {
        var minutes = Enumerable.Range(1, 9).Select(a => RetrySchedule.Backoff(a, Initial, Max).TotalMinutes);
        Assert.Equal([5, 10, 20, 40, 80, 160, 240, 240, 240], minutes);
        Assert.Equal(Initial, RetrySchedule.Backoff(0, Initial, Max));
        Assert.Equal(Max, RetrySchedule.Backoff(int.MaxValue, Initial, Max));
    }

    [Fact]
    public void AThousandMessagesDeferredTogetherDoNotComeBackInTheSameSecond()
    {
        var ids = Enumerable.Range(0, 1000).Select(_ => QueueId.New(Start)).ToList();
        Assert.Equal(1000, ids.Distinct().Count());
        foreach (var attempts in new[] { 1, 2, 7 })
        {
            var backoff = RetrySchedule.Backoff(attempts, Initial, Max);
            var due = ids.Select(id => RetrySchedule.Deferred(id, attempts, Start, Initial, Max)).ToList();
            // Never later than the backoff (so never past RetryMaxDelay), never sooner than a fifth off it.
            Assert.All(due, d => Assert.InRange(d - Start, backoff * (1 - RetrySchedule.Jitter), backoff));
            // Spread: with a 5-minute wait the jitter covers 60 seconds; no second gets more than a few times its share.
            var perSecond = due.GroupBy(d => (long)(d - Start).TotalSeconds).Select(g => g.Count()).ToList();
            Assert.True(perSecond.Count >= 55, $"attempt {attempts}: only {perSecond.Count} distinct seconds");
            Assert.True(perSecond.Max() <= 50, $"attempt {attempts}: {perSecond.Max()} messages in one second");
        }
    }

    [Fact]
    public void TheJitterIsFixedPerMessageAndAttempt()
    {
        var id = new QueueId("0000000000AB");
        Assert.Equal(RetrySchedule.Deferred(id, 3, Start, Initial, Max), RetrySchedule.Deferred(id, 3, Start, Initial, Max));
        // A message's recipients deferred in the same pass stay together; another attempt draws anew.
        Assert.NotEqual(RetrySchedule.Jittered(TimeSpan.FromHours(1), id, 3), RetrySchedule.Jittered(TimeSpan.FromHours(1), id, 4));
        Assert.InRange(RetrySchedule.Short(id, Start) - Start, TimeSpan.FromSeconds(48), RetrySchedule.ShortDelay);
        // Crowded: a few quick retries, never later than the initial delay itself.
        Assert.InRange(RetrySchedule.Crowded(id, 1, Start, Initial) - Start, TimeSpan.FromSeconds(8), RetrySchedule.CrowdedDelay);
        Assert.InRange(RetrySchedule.Crowded(id, 1, Start, TimeSpan.FromSeconds(2)) - Start, TimeSpan.FromSeconds(1.6), TimeSpan.FromSeconds(2));
    }

    [Fact]
    public void OneTimerWakesEachMessageWhenItIsDue()
    {
        var time = new FakeTimeProvider(Start);
        var woken = new List<string>();
        using var schedule = new RetrySchedule(time, id => woken.Add(id.Value));
        var (a, b, c) = (new QueueId("00000000000A"), new QueueId("00000000000B"), new QueueId("00000000000C"));
        schedule.Wake(b, Start.AddMinutes(10));
        schedule.Wake(a, Start.AddMinutes(5));
        schedule.Wake(c, Start.AddMinutes(20));
        // A later wake-up for a message that has an earlier one is dropped; an earlier one replaces it.
        schedule.Wake(a, Start.AddMinutes(7));
        schedule.Wake(c, Start.AddMinutes(15));
        Assert.Equal(3, schedule.Count);

        time.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromTicks(1));
        Assert.Empty(woken);
        time.Advance(TimeSpan.FromTicks(1));
        Assert.Equal(["00000000000A"], woken);
        time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(["00000000000A", "00000000000B"], woken);
        time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(["00000000000A", "00000000000B", "00000000000C"], woken);
        Assert.Equal(0, schedule.Count);
        // The replaced time (20 minutes) wakes nobody.
        time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(3, woken.Count);

        // A time already past wakes at once; several due together all wake at one tick.
        schedule.Wake(a, time.GetUtcNow().AddSeconds(-1));
        Assert.Equal(4, woken.Count);
        schedule.Wake(b, time.GetUtcNow().AddSeconds(30));
        schedule.Wake(c, time.GetUtcNow().AddSeconds(31));
        time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(["00000000000A", "00000000000B", "00000000000C", "00000000000A", "00000000000B", "00000000000C"], woken);
    }

    [Fact]
    public void TransportsLeaveTheRetryTimeToTheSchedule()
    {
        var deferred = Assert.IsType<DeliveryOutcome.Deferred>(SmtpDeliveryClient.Outcome(451, "4.7.1 try later"));
        Assert.Null(deferred.RetryAt);
        Assert.IsType<DeliveryOutcome.Bounced>(SmtpDeliveryClient.Outcome(550, "5.1.1 no such user"));
    }
}
