namespace Postern.Server.Limits;

/// <summary>
/// Events per key in a sliding window (connections per IP per minute, messages per user per hour),
/// on an injectable clock. The window is approximated the usual way: the count of the current fixed
/// window plus the previous window's count weighted by how much of it still overlaps.
/// The keys are attacker data, so the table is bounded: at <c>capacity</c> entries, those idle for
/// two windows go first, then (under a flood of fresh keys) an eighth of the table at once. An evicted key starts again from zero,
/// which favours the attacker only as much as using a fresh address would.
/// </summary>
public sealed class RateCounters<TKey>(TimeProvider time, TimeSpan window, int capacity = 100_000) where TKey : notnull
{
    private readonly Dictionary<TKey, Entry> _entries = [];

    private sealed class Entry
    {
        public DateTimeOffset Start;
        public long Current;
        public long Previous;
        public DateTimeOffset Touched;
    }

    public int Count
    {
        get
        {
            lock (_entries)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>
    /// Adds <paramref name="amount"/> events for <paramref name="key"/> unless that would take it over
    /// <paramref name="limit"/> in the window; returns whether they were added. A limit of 0 means none.
    /// </summary>
    public bool TryAdd(TKey key, int limit, int amount = 1)
    {
        if (limit <= 0)
        {
            return true;
        }
        var now = time.GetUtcNow();
        lock (_entries)
        {
            if (!_entries.TryGetValue(key, out var e))
            {
                if (_entries.Count >= capacity)
                {
                    Evict(now);
                }
                _entries[key] = e = new Entry { Start = now };
            }
            Roll(e, now);
            e.Touched = now;
            var overlap = 1 - ((now - e.Start) / window);
            var estimate = e.Current + (e.Previous * overlap);
            if (estimate + amount > limit)
            {
                return false;
            }
            e.Current += amount;
            return true;
        }
    }

    /// <summary>The events counted for <paramref name="key"/> in the window now (estimate).</summary>
    public double Estimate(TKey key)
    {
        var now = time.GetUtcNow();
        lock (_entries)
        {
            if (!_entries.TryGetValue(key, out var e))
            {
                return 0;
            }
            Roll(e, now);
            return e.Current + (e.Previous * (1 - ((now - e.Start) / window)));
        }
    }

    private void Roll(Entry e, DateTimeOffset now)
    {
        var elapsed = now - e.Start;
        if (elapsed < window)
        {
            return;
        }
        var windows = (long)(elapsed / window);
        e.Previous = windows == 1 ? e.Current : 0;
        e.Current = 0;
        e.Start += window * windows;
    }

    private void Evict(DateTimeOffset now)
    {
        foreach (var (key, e) in _entries)
        {
            if (now - e.Touched >= window * 2)
            {
                _entries.Remove(key);
            }
        }
        if (_entries.Count >= capacity)
        {
            // A flood of fresh keys: drop an eighth at once, so that each new key costs O(1) on average.
            foreach (var key in _entries.Keys.Take(Math.Max(1, capacity / 8)).ToList())
            {
                _entries.Remove(key);
            }
        }
    }
}
