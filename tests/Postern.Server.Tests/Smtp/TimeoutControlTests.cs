using Microsoft.Extensions.Time.Testing;
using Postern.Server.Smtp;

namespace Postern.Server.Tests.Smtp;

/// <summary>
/// Issue 12, "one owner of time": the session's deadlines on an injected clock. The control records
/// which deadline passed, so the reply never depends on reading the clock a second time.
/// </summary>
public sealed class TimeoutControlTests
{
    private sealed class Fired
    {
        public int Count;
    }

    private static (TimeoutControl Control, FakeTimeProvider Time, Fired Fired) Make(TimeSpan lifetime)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero));
        var fired = new Fired();
        return (new TimeoutControl(time, lifetime, () => Interlocked.Increment(ref fired.Count)), time, fired);
    }

    [Fact]
    public void ADeadlineFiresAtItsTimeAndSaysWhichItWas()
    {
        var (c, time, fired) = Make(TimeSpan.FromHours(1));
        c.Arm(Deadline.Data, TimeSpan.FromMinutes(3));
        time.Advance(TimeSpan.FromMinutes(3) - TimeSpan.FromTicks(1));
        Assert.Equal(0, fired.Count);
        Assert.Equal(Deadline.None, c.Expired);
        time.Advance(TimeSpan.FromTicks(1));
        Assert.Equal(1, fired.Count);
        Assert.Equal(Deadline.Data, c.Expired);
    }

    [Fact]
    public void AWaitForACommandIsCutAtTheSessionEndAndCountsAsTheLifetime()
    {
        // The CI failure of stop 18: the deadline was the session's end, but the clock read a moment
        // later said it had not passed, and the session was closed as a plain command timeout.
        var (c, time, fired) = Make(TimeSpan.FromSeconds(2));
        time.Advance(TimeSpan.FromSeconds(1.5));
        c.Arm(Deadline.Command, TimeSpan.FromMinutes(5));
        time.Advance(TimeSpan.FromSeconds(0.5));
        Assert.Equal(1, fired.Count);
        Assert.Equal(Deadline.Lifetime, c.Expired);
        Assert.True(c.LifetimeOver);
    }

    [Fact]
    public void DataIsNotCutAtTheSessionEnd()
    {
        var (c, time, _) = Make(TimeSpan.FromSeconds(2));
        c.Arm(Deadline.Data, TimeSpan.FromSeconds(10));
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(Deadline.None, c.Expired);
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(Deadline.Data, c.Expired);
    }

    [Fact]
    public void DisarmingOrRearmingStopsTheOldDeadline()
    {
        var (c, time, fired) = Make(TimeSpan.FromHours(1));
        c.Arm(Deadline.Command, TimeSpan.FromSeconds(10));
        c.Disarm();
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(0, fired.Count);
        c.Arm(Deadline.Command, TimeSpan.FromSeconds(10));
        time.Advance(TimeSpan.FromSeconds(5));
        c.Arm(Deadline.Data, TimeSpan.FromSeconds(10)); // replaces the first
        time.Advance(TimeSpan.FromSeconds(6));
        Assert.Equal(0, fired.Count);
        time.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal(1, fired.Count);
        Assert.Equal(Deadline.Data, c.Expired);
        c.Arm(Deadline.Command, TimeSpan.FromSeconds(10));
        Assert.Equal(Deadline.None, c.Expired); // a new wait starts clean
    }

    [Fact]
    public void AnInterruptionCallsBackAtOnceStaysAndKeepsTheDeadline()
    {
        var (c, time, fired) = Make(TimeSpan.FromHours(1));
        c.Arm(Deadline.Data, TimeSpan.FromSeconds(10));
        c.Interrupt();
        Assert.Equal(1, fired.Count);
        Assert.True(c.Interrupted);
        Assert.Equal(Deadline.None, c.Expired);
        // A transaction outlives a shutdown, but not its own data deadline.
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(2, fired.Count);
        Assert.Equal(Deadline.Data, c.Expired);
        c.Arm(Deadline.Command, TimeSpan.FromSeconds(1));
        Assert.True(c.Interrupted);
    }

    [Fact]
    public void ADeadlineAlreadyPastFiresAtOnce()
    {
        var (c, _, fired) = Make(TimeSpan.FromHours(1));
        c.Arm(Deadline.Write, TimeSpan.Zero);
        Assert.Equal(1, fired.Count);
        Assert.Equal(Deadline.Write, c.Expired);
    }
}
