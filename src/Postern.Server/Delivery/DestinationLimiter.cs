namespace Postern.Server.Delivery;

/// <summary>
/// At most <c>limit</c> deliveries to one destination at once (Delivery.DestinationConcurrency), so
/// that one slow or large destination cannot take every delivery worker and no receiving server sees
/// more parallel connections from us than it should. A delivery that finds its destination full does
/// not wait in a worker: it asks to be woken (<see cref="WhenFreeAsync"/>) and the worker moves on.
/// Entries exist only while a destination is busy or awaited, so the table stays bounded by the
/// work in progress, whatever domains the queue holds.
/// </summary>
public sealed class DestinationLimiter(int limit, TimeProvider? time = null)
{
    /// <summary>How long a lowered limit (<see cref="Crowded"/>) lasts after the last refusal.</summary>
    public static readonly TimeSpan CrowdedFor = TimeSpan.FromMinutes(10);

    // Lowered limits are kept at most for this many destinations (the oldest go first).
    private const int MaxCaps = 10_000;

    private readonly Dictionary<string, Entry> _entries = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, (int Cap, DateTimeOffset Until)> _caps = new(StringComparer.OrdinalIgnoreCase);
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    private sealed class Entry
    {
        public int Busy;
        public readonly Queue<TaskCompletionSource> Waiting = new();
    }

    // Under the lock.
    private int LimitOf(string destination)
    {
        if (!_caps.TryGetValue(destination, out var c))
        {
            return limit;
        }
        if (c.Until <= _time.GetUtcNow())
        {
            _caps.Remove(destination);
            return limit;
        }
        return c.Cap;
    }

    /// <summary>Takes a slot for <paramref name="destination"/> when one is free.</summary>
    public bool TryEnter(string destination)
    {
        lock (_entries)
        {
            if (!_entries.TryGetValue(destination, out var e))
            {
                _entries[destination] = e = new Entry();
            }
            if (e.Busy >= LimitOf(destination))
            {
                return false;
            }
            e.Busy++;
            return true;
        }
    }

    /// <summary>
    /// Gives a slot back and wakes one delivery waiting for it; when the destination has nothing
    /// under way any more, every waiting delivery. (A woken message may no longer need the slot, its
    /// recipient done meanwhile; without the second rule the others could then wait for a wake-up
    /// that never comes.)
    /// </summary>
    public void Exit(string destination)
    {
        var wake = new List<TaskCompletionSource>();
        lock (_entries)
        {
            if (!_entries.TryGetValue(destination, out var e))
            {
                return;
            }
            e.Busy--;
            while (e.Waiting.TryDequeue(out var w))
            {
                wake.Add(w);
                if (e.Busy > 0)
                {
                    break;
                }
            }
            if (e.Busy == 0 && e.Waiting.Count == 0)
            {
                _entries.Remove(destination);
            }
        }
        wake.ForEach(w => w.TrySetResult());
    }

    /// <summary>Completes when a slot for <paramref name="destination"/> has been given back (at once when one is free).</summary>
    public Task WhenFreeAsync(string destination)
    {
        lock (_entries)
        {
            if (!_entries.TryGetValue(destination, out var e) || e.Busy < LimitOf(destination))
            {
                return Task.CompletedTask;
            }
            var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            e.Waiting.Enqueue(tcs);
            return tcs.Task;
        }
    }

    /// <summary>
    /// The destination refused a new connection (421 at its greeting) while other deliveries to it
    /// were under way: it takes fewer from us at once. Each refusal lowers the number that may go at
    /// once by one (from those under way when it was refused; never below 1), as Postfix's
    /// destination concurrency feedback does, so a burst that opened eight where two are taken
    /// settles at two after six refusals instead of opening and being refused again and again. The
    /// rest wait for a slot (<see cref="WhenFreeAsync"/>). The lower number lasts
    /// <see cref="CrowdedFor"/> after the last refusal, across bursts.
    /// </summary>
    public void Crowded(string destination)
    {
        lock (_entries)
        {
            var busy = _entries.TryGetValue(destination, out var e) ? e.Busy : 0;
            var current = LimitOf(destination);
            if (_caps.Count >= MaxCaps && !_caps.ContainsKey(destination))
            {
                _caps.Remove(_caps.MinBy(c => c.Value.Until).Key);
            }
            _caps[destination] = (Math.Max(1, Math.Min(current, busy + 1) - 1), _time.GetUtcNow() + CrowdedFor);
        }
    }

    /// <summary>How many deliveries may go to <paramref name="destination"/> at once now.</summary>
    public int LimitFor(string destination)
    {
        lock (_entries)
        {
            return LimitOf(destination);
        }
    }

    /// <summary>Destinations being tracked (busy or awaited).</summary>
    public int Tracked
    {
        get
        {
            lock (_entries)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Deliveries under way to <paramref name="destination"/>.</summary>
    public int InUse(string destination)
    {
        lock (_entries)
        {
            return _entries.TryGetValue(destination, out var e) ? e.Busy : 0;
        }
    }
}
