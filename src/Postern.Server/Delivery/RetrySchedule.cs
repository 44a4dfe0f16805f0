using Postern.Server.Queue;

namespace Postern.Server.Delivery;

/// <summary>
/// The retry schedule, in one place (issue 12): when a deferred recipient is tried again, and the one
/// timer that brings a message back to the workers when its next recipient is due. The transports
/// only say that a recipient is deferred and why (<see cref="DeliveryOutcome.Deferred"/>); the time
/// comes from here.
/// <list type="bullet">
/// <item>Remote and LMTP deferrals: Delivery.RetryInitialDelay, doubling with each attempt up to
/// Delivery.RetryMaxDelay (<see cref="Backoff"/>).</item>
/// <item>A local (Maildir) delivery that failed for now, a recipient not known at the moment, or a
/// pass that failed: <see cref="ShortDelay"/>.</item>
/// <item>A destination that refused a new connection (421 at the greeting) with none of ours under
/// way: <see cref="CrowdedDelay"/>, <see cref="CrowdedQuickRetries"/> times, before the backoff.</item>
/// </list>
/// Every wait is shortened by up to a fifth (<see cref="Jitter"/>), by a share fixed per message
/// and attempt: a thousand messages deferred in the same second (a destination down) come back
/// spread over a fifth of the wait, not in the same second, while the recipients of one message stay
/// together (one pass, one connection). Shortened only, so no wait exceeds Delivery.RetryMaxDelay
/// and a clock advanced by the whole wait always finds the retry due.
/// </summary>
/// <remarks>
/// The wake-ups are one timer for every message (a wheel of due times, earliest first), not a timer
/// per message: a message is held once, at its earliest due time, and a wake-up asked for later than
/// one it already has is dropped (the earlier pass asks again for what is still deferred).
/// </remarks>
public sealed class RetrySchedule : IDisposable
{
    /// <summary>A local delivery that failed for now, or a pass that failed, is tried again this soon (a full disk or a passwd file being rewritten usually comes back quickly).</summary>
    public static readonly TimeSpan ShortDelay = TimeSpan.FromMinutes(1);

    /// <summary>A destination that refused a connection with none of ours under way (those just closed may still count there) is tried again this soon...</summary>
    public static readonly TimeSpan CrowdedDelay = TimeSpan.FromSeconds(10);

    /// <summary>...this many times, before the usual backoff.</summary>
    public const int CrowdedQuickRetries = 3;

    /// <summary>The largest share of a wait the jitter takes off.</summary>
    public const double Jitter = 0.2;

    private readonly TimeProvider _time;
    private readonly Action<QueueId> _due;
    private readonly ITimer _timer;
    private readonly object _gate = new();
    // Each message once, at its earliest due time; the queue may hold stale entries (a message woken
    // or rescheduled earlier since), recognised by a time that no longer matches.
    private readonly Dictionary<string, (QueueId Id, DateTimeOffset Due)> _waiting = [];
    private readonly PriorityQueue<string, DateTimeOffset> _wheel = new();
    private DateTimeOffset? _armedFor;

    /// <param name="time">The clock.</param>
    /// <param name="due">Called (on the timer's thread, or at once) when a message is due: it asks for a delivery pass.</param>
    public RetrySchedule(TimeProvider time, Action<QueueId> due)
    {
        _time = time;
        _due = due;
        _timer = time.CreateTimer(_ =>
        {
            lock (_gate)
            {
                _armedFor = null;
            }
            Fire();
        }, null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Messages waiting for a wake-up.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>The wait before attempt number <paramref name="attempts"/> + 1, without jitter: doubling from the initial delay, capped.</summary>
    public static TimeSpan Backoff(int attempts, TimeSpan initial, TimeSpan max) =>
        TimeSpan.FromTicks((long)Math.Min(initial.Ticks * Math.Pow(2, Math.Clamp(attempts - 1, 0, 30)), max.Ticks));

    /// <summary>When a recipient of <paramref name="id"/> deferred at <paramref name="after"/> after <paramref name="attempts"/> attempts is due again.</summary>
    public static DateTimeOffset Deferred(QueueId id, int attempts, DateTimeOffset after, TimeSpan initial, TimeSpan max) =>
        after + Jittered(Backoff(attempts, initial, max), id, attempts);

    /// <summary>When a local delivery of <paramref name="id"/> that failed for now at <paramref name="after"/> (or a pass that failed) is due again.</summary>
    public static DateTimeOffset Short(QueueId id, DateTimeOffset after) => after + Jittered(ShortDelay, id, 0);

    /// <summary>When a crowded destination is tried again (never later than the backoff would).</summary>
    public static DateTimeOffset Crowded(QueueId id, int attempts, DateTimeOffset after, TimeSpan initial) =>
        after + Jittered(CrowdedDelay < initial ? CrowdedDelay : initial, id, attempts);

    /// <summary><paramref name="wait"/> shortened by a share in [0, <see cref="Jitter"/>) fixed by the message and attempt.</summary>
    public static TimeSpan Jittered(TimeSpan wait, QueueId id, int attempts) =>
        TimeSpan.FromTicks(wait.Ticks - (long)(wait.Ticks * Jitter * Share(id.Value, attempts)));

    /// <summary>A number in [0, 1) from the id and attempt: FNV-1a (64 bits), stable across processes, unlike string.GetHashCode.</summary>
    private static double Share(string id, int attempts)
    {
        var h = 14695981039346656037UL;
        foreach (var c in id)
        {
            h = (h ^ c) * 1099511628211UL;
        }
        h = (h ^ (uint)attempts) * 1099511628211UL;
        // Mix the high bits down: FNV's low bits vary little between ids that share a prefix (queue ids begin with the time).
        h ^= h >> 29;
        h *= 0xBF58476D1CE4E5B9UL;
        h ^= h >> 32;
        return (h >> 11) * (1.0 / (1UL << 53));
    }

    /// <summary>Brings <paramref name="id"/> back at <paramref name="due"/> (at once when that has passed).</summary>
    public void Wake(QueueId id, DateTimeOffset due)
    {
        lock (_gate)
        {
            if (_waiting.TryGetValue(id.Value, out var held) && held.Due <= due)
            {
                return;
            }
            _waiting[id.Value] = (id, due);
            _wheel.Enqueue(id.Value, due);
        }
        Fire();
    }

    /// <summary>Wakes whatever is due, then sets the timer for the next. The clock is read again after the timer is set: when it moved past that time in between (a test's clock, a long pause), the wake-ups come at once rather than a whole wait late.</summary>
    private void Fire()
    {
        while (true)
        {
            var ready = new List<QueueId>();
            DateTimeOffset? next;
            var now = _time.GetUtcNow();
            lock (_gate)
            {
                while (_wheel.TryPeek(out var key, out var due) && due <= now)
                {
                    _wheel.Dequeue();
                    if (_waiting.TryGetValue(key, out var entry) && entry.Due == due)
                    {
                        _waiting.Remove(key);
                        ready.Add(entry.Id);
                    }
                }
                next = _wheel.TryPeek(out _, out var first) ? first : null;
                if (next is { } at && _armedFor != at)
                {
                    _armedFor = at;
                    _timer.Change(at - now, Timeout.InfiniteTimeSpan);
                }
            }
            foreach (var id in ready)
            {
                _due(id);
            }
            if (next is not { } nextDue || _time.GetUtcNow() < nextDue)
            {
                return;
            }
        }
    }

    public void Dispose() => _timer.Dispose();
}
