using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Postern.Server.Accounts;
using Postern.Server.Logging;
using Postern.Server.Queue;

namespace Postern.Server.Delivery;

/// <summary>A recipient's outcome (STYLE principle 8).</summary>
public abstract record DeliveryOutcome
{
    public sealed record Delivered(string Detail) : DeliveryOutcome;
    public sealed record Deferred(string Reason, DateTimeOffset RetryAt) : DeliveryOutcome;
    public sealed record Bounced(string Reply) : DeliveryOutcome;
}

/// <summary>
/// Delivers committed messages to their local recipients: a bounded pool of workers over a channel
/// of queue ids (STYLE principle 7). Each recipient's outcome is written to queue/state before the
/// message is removed, so a crash repeats a delivery at worst and never loses one. Remote recipients
/// stay in the queue for the outbound scheduler.
/// </summary>
public sealed class LocalDelivery(Spool spool, AddressBook addressBook, Maildir maildir, ILogger logger, TimeProvider time, int workers, bool discard)
{
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMinutes(1);
    private readonly Channel<(QueueId Id, SpooledMessage? Known)> _work = Channel.CreateUnbounded<(QueueId, SpooledMessage?)>(new UnboundedChannelOptions { SingleWriter = false });
    // Ids being processed; the value says whether another pass was asked for meanwhile.
    private readonly Dictionary<string, bool> _inFlight = [];

    /// <summary>Asks for a delivery pass; <paramref name="known"/> is the message as just committed, which saves reading it back.</summary>
    public void Enqueue(QueueId id, SpooledMessage? known = null) => _work.Writer.TryWrite((id, known));

    /// <summary>Runs the workers until <paramref name="stop"/> fires and the channel is drained of started work.</summary>
    public Task RunAsync(CancellationToken stop) =>
        Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Task.Run(() => WorkerAsync(stop), CancellationToken.None)));

    /// <summary>Queues every committed message found on disk (start-up recovery).</summary>
    public int Recover()
    {
        var ids = spool.ListIds();
        foreach (var id in ids)
        {
            Enqueue(id);
        }
        return ids.Count;
    }

    private async Task WorkerAsync(CancellationToken stop)
    {
        try
        {
            while (await _work.Reader.WaitToReadAsync(stop).ConfigureAwait(false))
            {
                while (!stop.IsCancellationRequested && _work.Reader.TryRead(out var item))
                {
                    var id = item.Id;
                    lock (_inFlight)
                    {
                        if (!_inFlight.TryAdd(id.Value, false))
                        {
                            // Being delivered right now: ask for one more pass rather than drop the request.
                            _inFlight[id.Value] = true;
                            continue;
                        }
                    }
                    try
                    {
                        Process(id, item.Known);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        // A worker must outlive any one message: log it, keep the message, try later.
                        Log.DeliveryError(logger, id.Value, e.Message, e);
                        _ = RetryLaterAsync(id);
                    }
                    finally
                    {
                        bool again;
                        lock (_inFlight)
                        {
                            _inFlight.Remove(id.Value, out again);
                        }
                        if (again)
                        {
                            Enqueue(id);
                        }
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Delivers what can be delivered locally now; returns true when the message left the queue.</summary>
    public bool Process(QueueId id, SpooledMessage? known = null)
    {
        SpooledMessage message;
        try
        {
            message = known ?? spool.Read(id);
        }
        catch (FileNotFoundException)
        {
            return true; // deleted meanwhile (postern queue delete)
        }
        catch (InvalidDataException e)
        {
            var moved = spool.MoveToCorrupt(id);
            Log.QueueCorrupt(logger, id.Value, moved, e.Message);
            return true;
        }
        var state = spool.ReadState(id) ?? new DeliveryState
        {
            Recipients = message.Envelope.Recipients.Select(r => new RecipientState { Address = r.Address, Local = r.Local }).ToList(),
        };
        var changed = false;
        var now = time.GetUtcNow();
        foreach (var r in state.Recipients.ToList())
        {
            if (r.Status is "delivered" or "bounced" || (!r.Local && !discard))
            {
                continue;
            }
            var outcome = DeliverOne(message, r, state);
            changed = true;
            r.LastAttempt = now;
            var delay = (now - message.Envelope.Received).TotalSeconds;
            Metrics.Deliveries.Add(1, new("relay", discard ? "discard" : "local"), new("status", outcome switch
            {
                DeliveryOutcome.Delivered => "sent",
                DeliveryOutcome.Deferred => "deferred",
                _ => "bounced",
            }));
            switch (outcome)
            {
                case DeliveryOutcome.Delivered d:
                    r.Status = "delivered";
                    r.Detail = d.Detail;
                    Log.Delivery(logger, id.Value, r.Address, r.Original ?? r.Address, discard ? "discard" : "local", "sent", Math.Round(delay, 3), d.Detail);
                    break;
                case DeliveryOutcome.Bounced b:
                    r.Status = "bounced";
                    r.Detail = b.Reply;
                    Log.Delivery(logger, id.Value, r.Address, r.Original ?? r.Address, "local", "bounced", Math.Round(delay, 3), b.Reply);
                    break;
                case DeliveryOutcome.Deferred f:
                    r.Status = "deferred";
                    r.Detail = f.Reason;
                    r.NextAttempt = f.RetryAt;
                    Log.Delivery(logger, id.Value, r.Address, r.Original ?? r.Address, "local", "deferred", Math.Round(delay, 3), f.Reason);
                    break;
            }
        }
        if (state.Recipients.All(r => r.Status is "delivered" or "bounced"))
        {
            spool.Remove(id);
            Log.Removed(logger, id.Value, "delivered");
            return true;
        }
        if (changed && File.Exists(message.Path))
        {
            // (A message deleted meanwhile by `queue delete` gets no new state file.)
            spool.WriteState(id, state);
        }
        if (state.Recipients.Any(r => r.Status == "deferred" && r.Local))
        {
            _ = RetryLaterAsync(id);
        }
        var remote = state.Recipients.Count(r => !r.Local && r.Status is "pending" or "deferred");
        if (remote > 0 && changed)
        {
            Log.QueuedRemote(logger, id.Value, remote);
        }
        return false;
    }

    private async Task RetryLaterAsync(QueueId id)
    {
        await Task.Delay(RetryDelay, time).ConfigureAwait(false);
        Enqueue(id);
    }

    private DeliveryOutcome DeliverOne(SpooledMessage message, RecipientState r, DeliveryState state)
    {
        if (discard)
        {
            return new DeliveryOutcome.Delivered("discarded");
        }
        var targets = addressBook.Expand(r.Address);
        if (targets.Count == 0)
        {
            // The address was valid at RCPT. It may have been removed since, or the passwd file may be
            // unreadable for a moment: never discard acknowledged mail on that. Retry; the queue
            // lifetime decides when it turns into a bounce.
            return new DeliveryOutcome.Deferred("recipient is not known at the moment (account or alias removed?)", time.GetUtcNow() + RetryDelay);
        }
        try
        {
            var delivered = new List<string>();
            foreach (var (address, local) in targets)
            {
                if (!local)
                {
                    // Forwarded by an alias: the outbound side takes it from here.
                    if (!state.Recipients.Any(x => x.Address.Equals(address, StringComparison.OrdinalIgnoreCase) && !x.Local))
                    {
                        state.Recipients.Add(new RecipientState { Address = address, Local = false, Original = r.Address });
                    }
                    continue;
                }
                using var content = Spool.OpenMessage(message);
                var file = maildir.Deliver(address, message.Envelope.From, content, message.MessageLength);
                delivered.Add($"{address}:{Path.GetFileName(file)}");
            }
            return new DeliveryOutcome.Delivered(delivered.Count == 0 ? "forwarded" : string.Join(' ', delivered));
        }
        catch (IOException e)
        {
            return new DeliveryOutcome.Deferred(e.Message, time.GetUtcNow() + RetryDelay);
        }
        catch (UnauthorizedAccessException e)
        {
            return new DeliveryOutcome.Deferred(e.Message, time.GetUtcNow() + RetryDelay);
        }
    }
}
