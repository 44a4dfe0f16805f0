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

/// <summary>
/// The one owner of a session's time (issue 12). Every wait for the client runs under exactly one
/// deadline armed here, on the server's <see cref="TimeProvider"/>, with one timer per session
/// (the model is Kestrel's TimeoutControl). When a deadline passes, the control records which one
/// it was and calls back (the session cancels its pending read): the reply and the close reason
/// come from that record, never from reading the clock again afterwards (a timer and a clock read a
/// moment apart used to disagree about whether the session lifetime had passed). Deadlines that
/// wait for a command are cut at the session's end and then count as <see cref="Deadline.Lifetime"/>.
/// Thread-safe: the session arms and disarms, the timer and the listener (shedding) fire.
/// </summary>
public sealed class TimeoutControl : IDisposable
{
    private readonly TimeProvider _time;
    private readonly Action _expired;
    private readonly ITimer _timer;
    private readonly Lock _gate = new();
    private Deadline _armed;
    private DateTimeOffset _due;
    private Deadline _expiredAs;
    private volatile bool _interrupted;

    /// <param name="time">The server's clock.</param>
    /// <param name="lifetime">Limits.SessionLifetime, counted from now.</param>
    /// <param name="expired">Called (on the timer's thread, or the interrupter's) when a deadline passes or the session is interrupted.</param>
    public TimeoutControl(TimeProvider time, TimeSpan lifetime, Action expired)
    {
        _time = time;
        _expired = expired;
        SessionEnd = time.GetUtcNow() + lifetime;
        _timer = time.CreateTimer(static s => ((TimeoutControl)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Connect time plus Limits.SessionLifetime: no command is waited for past it.</summary>
    public DateTimeOffset SessionEnd { get; }

    /// <summary>Whether the session's lifetime has passed (checked at a command boundary).</summary>
    public bool LifetimeOver => _time.GetUtcNow() >= SessionEnd;

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
    public void Arm(Deadline kind, TimeSpan timeout) => ArmUntil(kind, _time.GetUtcNow() + timeout);

    /// <summary>As <see cref="Arm"/>, to an absolute deadline.</summary>
    public void ArmUntil(Deadline kind, DateTimeOffset due)
    {
        if (kind is Deadline.Command or Deadline.Handshake && due >= SessionEnd)
        {
            (kind, due) = (Deadline.Lifetime, SessionEnd);
        }
        lock (_gate)
        {
            _expiredAs = Deadline.None;
            _armed = kind;
            _due = due;
            _timer.Change(Until(due), Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>The wait ended in time: nothing fires until the next <see cref="Arm"/>.</summary>
    public void Disarm()
    {
        lock (_gate)
        {
            _armed = Deadline.None;
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
            var left = _due - _time.GetUtcNow();
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

    private TimeSpan Until(DateTimeOffset due)
    {
        var left = due - _time.GetUtcNow();
        return left > TimeSpan.Zero ? left : TimeSpan.Zero;
    }

    public void Dispose() => _timer.Dispose();
}
