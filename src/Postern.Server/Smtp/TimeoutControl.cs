namespace Postern.Server.Smtp;

/// <summary>Which deadline ended a wait for the client.</summary>
public enum Deadline
{
    /// <summary>No deadline expired.</summary>
    None,

    /// <summary>Limits.CommandTimeout while waiting for a command (RFC 5321 §4.5.3.2.7).</summary>
    Command,

    /// <summary>Limits.DataTimeout between two reads of message data (RFC 5321 §4.5.3.2.6).</summary>
    Data,

    /// <summary>The deadline Limits.MinDataRate sets for message data (slowloris).</summary>
    DataRate,

    /// <summary>Limits.SessionLifetime: the session's own end.</summary>
    Lifetime,

    /// <summary>Limits.HandshakeTimeout: a whole TLS handshake, or all the lines of one AUTH exchange.</summary>
    Handshake,

    /// <summary>Triage.GreetingPause: the quiet wait before the greeting (its end is the normal outcome).</summary>
    GreetingPause,

    /// <summary>Limits.CommandTimeout for the client to take the replies sent to it.</summary>
    Write,
}

/// <summary>A wait for the client ended because <see cref="Deadline"/> passed (the reply and close reason follow it).</summary>
public sealed class DeadlineExpiredException(Deadline deadline) : OperationCanceledException($"deadline passed: {deadline}")
{
    public Deadline Deadline { get; } = deadline;
}

/// <summary>
/// The one owner of a session's time (issue 12). Every wait for the client runs under exactly one
/// deadline armed here, on the server's <see cref="TimeProvider"/>, with one timer per session
/// (the model is Kestrel's TimeoutControl). When a deadline passes, the control records which one
/// it was and calls back (the session cancels its pending read): the reply and the close reason
/// come from that record, never from reading the clock again afterwards (a timer and a clock read a
/// moment apart used to disagree about whether the session lifetime had passed). Deadlines that
/// wait for a command are cut at the session's end and then count as <see cref="Deadline.Lifetime"/>.
/// Deadlines are kept on the provider's monotonic timestamp, so a step of the wall clock (NTP, a
/// resumed VM) neither stretches nor fires an armed deadline; absolute deadlines are converted once,
/// when armed. Thread-safe: the session arms and disarms, the timer and the listener (shedding) fire.
/// </summary>
public sealed class TimeoutControl : IDisposable
{
    private readonly TimeProvider _time;
    private readonly Action _expired;
    private readonly ITimer _timer;
    private readonly Lock _gate = new();
    private Deadline _armed;
    private long _due; // the provider's timestamp
    private readonly long _sessionEnd; // the provider's timestamp
    private Deadline _expiredAs;
    private volatile bool _interrupted;

    /// <param name="time">The server's clock.</param>
    /// <param name="lifetime">Limits.SessionLifetime, counted from now.</param>
    /// <param name="expired">Called (on the timer's thread, or the interrupter's) when a deadline passes or the session is interrupted.</param>
    public TimeoutControl(TimeProvider time, TimeSpan lifetime, Action expired)
    {
        _time = time;
        _expired = expired;
        _sessionEnd = time.GetTimestamp() + Ticks(lifetime);
        _timer = time.CreateTimer(static s => ((TimeoutControl)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Connect time plus Limits.SessionLifetime, on the wall clock as of now: no command is waited for past it.</summary>
    public DateTimeOffset SessionEnd => _time.GetUtcNow() + _time.GetElapsedTime(_time.GetTimestamp(), _sessionEnd);

    /// <summary>Whether the session's lifetime has passed (checked at a command boundary).</summary>
    public bool LifetimeOver => _time.GetTimestamp() >= _sessionEnd;

    /// <summary>The deadline that ended the current (or last) wait, or None.</summary>
    public Deadline Expired
    {
        get
        {
            lock (_gate)
            {
                return _expiredAs;
            }
        }
    }

    /// <summary>Whether <see cref="Interrupt"/> was called (it stays so).</summary>
    public bool Interrupted => _interrupted;

    /// <summary>
    /// Arms <paramref name="kind"/> to pass after <paramref name="timeout"/>; a wait for a command
    /// (Command, Handshake) is cut at <see cref="SessionEnd"/> and then counts as Lifetime.
    /// Replaces whatever was armed and clears a previous expiry.
    /// </summary>
    public void Arm(Deadline kind, TimeSpan timeout) => ArmAt(kind, _time.GetTimestamp() + Ticks(timeout));

    /// <summary>As <see cref="Arm"/>, to an absolute deadline on the wall clock (converted to the monotonic clock now).</summary>
    public void ArmUntil(Deadline kind, DateTimeOffset due) => Arm(kind, due - _time.GetUtcNow());

    private void ArmAt(Deadline kind, long due)
    {
        if (kind is Deadline.Command or Deadline.Handshake && due >= _sessionEnd)
        {
            (kind, due) = (Deadline.Lifetime, _sessionEnd);
        }
        lock (_gate)
        {
            _expiredAs = Deadline.None;
            _armed = kind;
            _due = due;
            _timer.Change(Until(due), Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>The wait ended (in time or not): nothing fires, and nothing counts as expired, until the next <see cref="Arm"/>.</summary>
    public void Disarm()
    {
        lock (_gate)
        {
            _armed = Deadline.None;
            _expiredAs = Deadline.None;
            _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>
    /// Ends the session from outside (shutdown, shedding): recorded for good, and the callback runs
    /// now. The armed deadline stays: the session decides whether the interruption ends its current
    /// wait (never inside a transaction), and if not, the deadline still bounds it.
    /// </summary>
    public void Interrupt()
    {
        _interrupted = true;
        _expired();
    }

    private void OnTimer()
    {
        lock (_gate)
        {
            if (_armed == Deadline.None)
            {
                return; // disarmed (or re-armed) while the timer was on its way
            }
            var left = Until(_due);
            if (left > TimeSpan.Zero)
            {
                // A timer may run a moment early by the clock it is compared with: wait the rest.
                _timer.Change(left, Timeout.InfiniteTimeSpan);
                return;
            }
            _expiredAs = _armed;
            _armed = Deadline.None;
        }
        _expired();
    }

    private static readonly TimeSpan MaxTimer = TimeSpan.FromDays(40);

    private TimeSpan Until(long due)
    {
        // A timer takes at most about 49 days; a later deadline re-arms when the timer comes (OnTimer).
        var now = _time.GetTimestamp();
        var left = due > now ? _time.GetElapsedTime(now, due) : TimeSpan.Zero;
        return left < MaxTimer ? left : MaxTimer;
    }

    /// <summary>A span in the provider's timestamp units (negative spans count as none).</summary>
    private long Ticks(TimeSpan span) =>
        span <= TimeSpan.Zero ? 0 : (long)Math.Min(span.TotalSeconds * _time.TimestampFrequency, long.MaxValue / 4);

    public void Dispose() => _timer.Dispose();
}
