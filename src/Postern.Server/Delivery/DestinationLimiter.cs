namespace Postern.Server.Delivery;

/// <summary>
/// At most <c>limit</c> deliveries to one destination at once (Delivery.DestinationConcurrency), so
/// that one slow or large destination cannot take every delivery worker and no receiving server sees
/// more parallel connections from us than it should. A delivery that finds its destination full does
/// not wait in a worker: it asks to be woken (<see cref="WhenFreeAsync"/>) and the worker moves on.
/// Entries exist only while a destination is busy or awaited, so the table stays bounded by the
/// work in progress, whatever domains the queue holds.
/// </summary>
public sealed class DestinationLimiter(int limit)
{
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.OrdinalIgnoreCase);

    private sealed class Entry
    {
        public int Busy;
        public readonly Queue<TaskCompletionSource> Waiting = new();
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
            if (e.Busy >= limit)
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
            if (!_entries.TryGetValue(destination, out var e) || e.Busy < limit)
            {
                return Task.CompletedTask;
            }
            var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            e.Waiting.Enqueue(tcs);
            return tcs.Task;
        }
    }

    /// <summary>
    /// Completes when one of the deliveries under way to <paramref name="destination"/> ends (at
    /// once when none is): for a delivery the destination refused because we already had enough
    /// connections to it, which may go when one of those is done.
    /// </summary>
    public Task WhenOneEndsAsync(string destination)
    {
        lock (_entries)
        {
            if (!_entries.TryGetValue(destination, out var e) || e.Busy == 0)
            {
                return Task.CompletedTask;
            }
            var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            e.Waiting.Enqueue(tcs);
            return tcs.Task;
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
