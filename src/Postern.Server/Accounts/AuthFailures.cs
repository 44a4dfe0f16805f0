using System.Net;

namespace Postern.Server.Accounts;

/// <summary>
/// Failed AUTH per client IP (SPEC §4): each failure lengthens the delay before the 535 reply, and
/// too many in the window lock the IP out for a while. The table is attacker-fed, so it is bounded.
/// </summary>
public sealed class AuthFailures(TimeProvider time, int maxFailures, TimeSpan window, TimeSpan lockout, TimeSpan baseDelay)
{
    private const int MaxEntries = 50_000;
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(8);
    private readonly Dictionary<IPAddress, Entry> _entries = [];
    private readonly object _gate = new();

    private sealed class Entry
    {
        public int Failures;
        public DateTimeOffset WindowStart;
        public DateTimeOffset? LockedUntil;
    }

    /// <summary>The time until which this IP is refused, or null.</summary>
    public DateTimeOffset? LockedUntil(IPAddress ip)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(ip, out var e) && e.LockedUntil is { } until)
            {
                if (until > time.GetUtcNow())
                {
                    return until;
                }
                _entries.Remove(ip);
            }
            return null;
        }
    }

    /// <summary>Records a failure; returns the failures in the window, the delay to apply, and whether it just locked out.</summary>
    public (int Failures, TimeSpan Delay, DateTimeOffset? LockedUntil) RecordFailure(IPAddress ip)
    {
        var now = time.GetUtcNow();
        lock (_gate)
        {
            if (!_entries.TryGetValue(ip, out var e) || now - e.WindowStart > window)
            {
                if (_entries.Count >= MaxEntries)
                {
                    Prune(now);
                }
                e = new Entry { WindowStart = now };
                _entries[ip] = e;
            }
            e.Failures++;
            if (e.Failures >= maxFailures)
            {
                e.LockedUntil = now + lockout;
            }
            var factor = Math.Pow(2, Math.Min(e.Failures - 1, 10));
            var delay = TimeSpan.FromTicks((long)Math.Min(baseDelay.Ticks * factor, MaxDelay.Ticks));
            return (e.Failures, delay, e.LockedUntil);
        }
    }

    private void Prune(DateTimeOffset now)
    {
        foreach (var (ip, e) in _entries.ToList())
        {
            if (e.LockedUntil is null ? now - e.WindowStart > window : e.LockedUntil < now)
            {
                _entries.Remove(ip);
            }
        }
        if (_entries.Count >= MaxEntries)
        {
            // Still full of live entries: forget the unlocked ones rather than grow without bound.
            foreach (var (ip, e) in _entries.Where(kv => kv.Value.LockedUntil is null).ToList())
            {
                _entries.Remove(ip);
            }
        }
    }
}
