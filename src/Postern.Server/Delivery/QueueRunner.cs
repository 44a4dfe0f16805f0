using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Postern.Server.Accounts;
using Postern.Server.Logging;
using Postern.Server.Queue;

namespace Postern.Server.Delivery;

/// <summary>
/// Delivers committed messages: a bounded pool of workers over two channels of queue ids (STYLE
/// principle 7), one for new mail and one for retries, which each worker takes from in turn so that
/// a burst of new mail does not starve the deferred backlog and a backlog coming due at once does not
/// hold up new mail. Local recipients go into their Maildir; remote ones, when due, out through
/// <see cref="IRemoteDelivery"/> (by MX or through the smarthost), at most
/// Delivery.DestinationConcurrency at a time per destination: a message whose destination is full
/// waits outside the workers until a slot frees. Deferred recipients are retried with a delay that
/// doubles per attempt until Delivery.MaxQueueLifetime. Each recipient's outcome is written to
/// queue/state before the message is removed, so a crash repeats a delivery at worst and never
/// loses one. A message one worker holds is never processed by another at the same time; a held
/// message (queue/hold/ID) is not processed at all. What `postern queue` asks of a message (retry,
/// bounce) is applied by the worker that takes it, before anything else (QueueRunner.Control.cs).
/// </summary>
/// <remarks>
/// The worker counts and Delivery.DestinationConcurrency are those of the start. The rest of
/// Delivery (retry delays, lifetime, warnings, Discard) and the way out for remote mail (by MX or
/// through the smarthost) come from <see cref="Configuration"/>, the configuration in force at each
/// attempt, when it is set (a reload changes them); otherwise from the constructor's.
/// </remarks>
public sealed partial class QueueRunner(Spool spool, AddressBook addressBook, Maildir maildir, IRemoteDelivery? startRemote, BounceWriter? bounces,
    Configuration.DeliveryOptions startOptions, ILogger logger, TimeProvider time, QueueControl? control = null, LmtpDelivery? lmtp = null)
{
    private readonly int workers = startOptions.LocalConcurrency + startOptions.RemoteConcurrency;
    private readonly DestinationLimiter _destinations = new(startOptions.DestinationConcurrency, time);

    /// <summary>The configuration in force (PosternServer sets it); null: the constructor's options and remote delivery, always.</summary>
    public Func<Configuration.ServerConfiguration>? Configuration { get; init; }
    private readonly Channel<(QueueId Id, SpooledMessage? Known)> _fresh = Channel.CreateUnbounded<(QueueId, SpooledMessage?)>();
    private readonly Channel<(QueueId Id, SpooledMessage? Known)> _retries = Channel.CreateUnbounded<(QueueId, SpooledMessage?)>();
    // Ids being processed; the value says whether another pass was asked for meanwhile.
    private readonly Dictionary<string, bool> _inFlight = [];

    /// <summary>Asks for a delivery pass of new mail; <paramref name="known"/> is the message as just committed, which saves reading it back.</summary>
    public void Enqueue(QueueId id, SpooledMessage? known = null) => _fresh.Writer.TryWrite((id, known));

    /// <summary>Asks for a delivery pass of mail that has been tried before (retries, recovery, flush).</summary>
    public void EnqueueRetry(QueueId id) => _retries.Writer.TryWrite((id, null));

    private RetrySchedule? _schedule;
    private object? _scheduleMade;

    /// <summary>When each deferred message comes back (one timer for all of them); made at first use, as it calls <see cref="EnqueueRetry"/>.</summary>
    internal RetrySchedule Schedule => LazyInitializer.EnsureInitialized(ref _schedule, ref _scheduleMade, () => new RetrySchedule(time, EnqueueRetry));

    /// <summary>Runs the workers until <paramref name="stop"/> fires and the channel is drained of started work.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        await Task.WhenAll(Enumerable.Range(0, workers).Select(_ => Task.Run(() => WorkerAsync(stop), CancellationToken.None))).ConfigureAwait(false);
        Schedule.Dispose(); // no wake-ups for a runner that stopped
    }

    /// <summary>Queues every committed message found on disk (start-up recovery).</summary>
    public int Recover()
    {
        var ids = spool.ListIds();
        foreach (var id in ids)
        {
            EnqueueRetry(id);
        }
        return ids.Count;
    }

    /// <summary>Takes the next id, from new mail and retries in turn (either when the other is empty).</summary>
    private bool TryTake(ref bool retriesFirst, out (QueueId Id, SpooledMessage? Known) item)
    {
        var (first, second) = retriesFirst ? (_retries, _fresh) : (_fresh, _retries);
        retriesFirst = !retriesFirst;
        return first.Reader.TryRead(out item) || second.Reader.TryRead(out item);
    }

    private async Task WorkerAsync(CancellationToken stop)
    {
        var retriesFirst = false;
        while (!stop.IsCancellationRequested)
        {
            if (!TryTake(ref retriesFirst, out var item))
            {
                await Task.WhenAny(_fresh.Reader.WaitToReadAsync(stop).AsTask(), _retries.Reader.WaitToReadAsync(stop).AsTask()).ConfigureAwait(false);
                continue;
            }
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
                await ProcessAsync(id, item.Known, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // A worker must outlive any one message: log it, keep the message, try later.
                Log.DeliveryError(logger, id.Value, e.Message, e);
                Schedule.Wake(id, RetrySchedule.Short(id, time.GetUtcNow()));
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
                    EnqueueRetry(id);
                }
            }
        }
    }

    /// <summary>Delivers what is due now; returns true when the message left the queue.</summary>
    public async Task<bool> ProcessAsync(QueueId id, SpooledMessage? known = null, CancellationToken cancellationToken = default)
    {
        // What `postern queue` asked for this message is applied first, by this worker alone.
        var order = TakeOrder(id);
        try
        {
            return await ProcessAsync(id, known, order, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            order?.Finish(logger);
        }
    }

    private async Task<bool> ProcessAsync(QueueId id, SpooledMessage? known, Order? order, CancellationToken cancellationToken)
    {
        if (control?.IsHeld(id) == true && order?.Bounce != true)
        {
            if (order is not null)
            {
                order.Reply = QueueControl.OnHold(id);
            }
            return false; // `postern queue release` brings it back
        }
        SpooledMessage message;
        try
        {
            message = known ?? spool.Read(id);
        }
        catch (FileNotFoundException)
        {
            if (order is not null)
            {
                order.Reply = ControlReply.NotFound(id.Value);
            }
            // Deleted meanwhile (postern queue delete): drop a state file a pass busy with it at the time may have written since.
            spool.Remove(id);
            return true;
        }
        catch (InvalidDataException e)
        {
            var moved = spool.MoveToCorrupt(id);
            Log.QueueCorrupt(logger, id.Value, moved, e.Message);
            if (order is not null)
            {
                order.Reply = new ControlReply("failed", $"{id} is unreadable ({e.Message}); moved to {moved}", Ok: false);
            }
            return true;
        }
        DeliveryState state;
        try
        {
            state = spool.ReadState(id) ?? QueueControl.InitialState(message.Envelope);
        }
        catch (InvalidDataException e)
        {
            // Never "no state": that would deliver again what was delivered. Aside, and held.
            var moved = (control ?? new QueueControl(spool.Root)).SetAsideUnreadableState(spool, id);
            Log.QueueStateCorrupt(logger, id.Value, moved, "held", e.Message);
            if (order is not null)
            {
                order.Reply = QueueControl.StateUnreadable(id, moved, e.Message);
            }
            return false;
        }
        var now = time.GetUtcNow();
        // One configuration for the whole attempt, even when a reload comes meanwhile.
        var config = Configuration?.Invoke();
        var options = config?.Options.Delivery ?? startOptions;
        var remote = config is null ? startRemote : config.Remote;
        var discard = options.Discard;
        var changed = order is not null && ApplyOrder(message, state, order, now);
        if (lmtp is not null && !discard)
        {
            changed |= await DeliverByLmtpAsync(message, state, now, options, cancellationToken).ConfigureAwait(false);
        }
        // By index: an alias adds its accounts to the list, and they are delivered in this same pass.
        for (var i = 0; i < state.Recipients.Count; i++)
        {
            var r = state.Recipients[i];
            if (r.Status.IsFinal() || (!r.Local && !discard) || (lmtp is not null && !discard))
            {
                continue;
            }
            var outcome = DeliverOne(message, r, state, discard);
            changed = true;
            r.LastAttempt = now;
            Record(message, r, outcome, discard ? "discard" : "local", now);
        }
        if (!discard && remote is not null)
        {
            changed |= await DeliverRemoteAsync(message, state, now, remote, options, cancellationToken).ConfigureAwait(false);
        }
        // Tell the sender (one report per kind and pass), before the state says it was told.
        if (bounces is not null && File.Exists(message.Path))
        {
            var failed = new List<SpooledMessage>();
            changed |= await NotifyAsync(message, state, r => r.Status == RecipientStatus.Bounced && !r.Notified, _ => DsnAction.Failed, r => r.Notified = true, failed).ConfigureAwait(false);
            if (order is not null)
            {
                NoteBounceSent(order, message, failed);
            }
            changed |= await NotifyAsync(message, state, r => r.Status == RecipientStatus.Delivered && !r.Notified, r => r.Local || !r.PeerHandlesDsn ? (r.Local ? DsnAction.Delivered : DsnAction.Relayed) : null, r => r.Notified = true).ConfigureAwait(false);
            var late = time.GetUtcNow() - message.Envelope.Received >= options.DelayWarningAfter;
            changed |= late && await NotifyAsync(message, state, r => r.Status == RecipientStatus.Deferred && !r.Warned, DsnAction.Delayed, r => r.Warned = true).ConfigureAwait(false);
        }
        // Done when every recipient is delivered or bounced and its sender told.
        if (state.Recipients.All(r => r.Status.IsFinal() && r.Notified))
        {
            spool.Remove(id);
            control?.Release(id);
            Log.Removed(logger, id.Value, "delivered");
            return true;
        }
        if (changed && File.Exists(message.Path))
        {
            // (A message deleted meanwhile by `queue delete` gets no new state file.)
            spool.WriteState(id, state);
        }
        var next = state.Recipients.Where(r => r.Status == RecipientStatus.Deferred && r.NextAttempt is not null).Select(r => r.NextAttempt!.Value).DefaultIfEmpty().Min();
        if (next != default)
        {
            Schedule.Wake(id, next);
        }
        var waiting = state.Recipients.Count(r => !r.Local && r.Status.IsWaiting());
        if (waiting > 0 && changed)
        {
            Log.QueuedRemote(logger, id.Value, waiting);
        }
        return false;
    }

    private Task<bool> NotifyAsync(SpooledMessage message, DeliveryState state, Func<RecipientState, bool> which, DsnAction action, Action<RecipientState> mark) =>
        NotifyAsync(message, state, which, _ => action, mark);

    /// <summary>Queues one report for the recipients selected, grouped by the action each needs (null: none); <paramref name="queued"/> collects the reports.</summary>
    private async Task<bool> NotifyAsync(SpooledMessage message, DeliveryState state, Func<RecipientState, bool> which, Func<RecipientState, DsnAction?> action, Action<RecipientState> mark,
        List<SpooledMessage>? queued = null)
    {
        var selected = state.Recipients.Where(which).ToList();
        foreach (var group in selected.Where(r => action(r) is not null).GroupBy(r => action(r)!.Value))
        {
            var dsn = await bounces!.CreateAsync(message, group.ToList(), group.Key).ConfigureAwait(false);
            if (dsn is not null)
            {
                Log.BounceQueued(logger, message.Id.Value, dsn.Id.Value, dsn.Envelope.Recipients[0].Address, group.Count());
                queued?.Add(dsn);
                Enqueue(dsn.Id, dsn);
            }
        }
        selected.ForEach(mark);
        return selected.Count > 0;
    }

    /// <summary>
    /// Remote recipients that are due, grouped by domain, each group in one SMTP transaction per host.
    /// A group whose destination is at its limit stays as it is; the message comes back when a slot frees.
    /// </summary>
    private async Task<bool> DeliverRemoteAsync(SpooledMessage message, DeliveryState state, DateTimeOffset now, IRemoteDelivery remote, Configuration.DeliveryOptions options,
        CancellationToken cancellationToken)
    {
        var due = state.Recipients.Where(r => !r.Local && (r.Status == RecipientStatus.Pending || (r.Status == RecipientStatus.Deferred && (r.NextAttempt ?? now) <= now))).ToList();
        var changed = false;
        // One transaction per destination domain and sender: copies an alias forwards go with the
        // alias's domain (SRS sender, ARC set), apart from mail sent to the domain directly.
        foreach (var group in due.GroupBy(r => (Domain: DomainOf(r.Address).ToLowerInvariant(), Forwarder: r.Original is null ? null : DomainOf(r.Original).ToLowerInvariant())))
        {
            var destination = remote.Destination(group.Key.Domain);
            if (!_destinations.TryEnter(destination))
            {
                _ = WakeWhenFreeAsync(message.Id, destination);
                continue;
            }
            IReadOnlyList<(string Recipient, DeliveryOutcome Outcome)> outcomes;
            var recipients = group.ToList();
            try
            {
                var forwarding = group.Key.Forwarder is { } by ? new Forwarding(by) : null;
                outcomes = await remote.DeliverAsync(message, group.Key.Domain, recipients.Select(r => r.Address).ToList(), forwarding, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _destinations.Exit(destination);
            }
            changed = true;
            var after = time.GetUtcNow();
            // Refused at the greeting while other deliveries to the destination are under way: the
            // server takes fewer connections from us at once than Delivery.DestinationConcurrency.
            // From now on no more than those go at once, and this one goes as soon as one of them
            // ends (over the connection it leaves for reuse), not after a backoff.
            var crowded = _destinations.InUse(destination) > 0;
            var waitsForOne = false;
            for (var i = 0; i < recipients.Count; i++)
            {
                var r = recipients[i];
                var outcome = outcomes[i].Outcome;
                if (crowded && outcome is DeliveryOutcome.Deferred { Crowded: true } busy)
                {
                    // No attempt counted, and due again at once: a free slot wakes it.
                    r.LastAttempt = after;
                    Record(message, r, busy with { Reason = $"{busy.Reason}; tried again when one of the deliveries under way to {destination} ends", RetryAt = null }, remote.Transport, after);
                    waitsForOne = true;
                    continue;
                }
                Record(message, r, Settle(message, r, outcome, after, options), remote.Transport, after);
            }
            if (waitsForOne)
            {
                _destinations.Crowded(destination);
                _ = WakeWhenFreeAsync(message.Id, destination);
            }
        }
        return changed;
    }

    /// <summary>Counts the attempt and says when a deferred recipient is due again, or that it expired.</summary>
    private static DeliveryOutcome Settle(SpooledMessage message, RecipientState r, DeliveryOutcome outcome, DateTimeOffset after, Configuration.DeliveryOptions options)
    {
        r.Attempts++;
        r.LastAttempt = after;
        if (outcome is DeliveryOutcome.Deferred d && after - message.Envelope.Received >= options.MaxQueueLifetime)
        {
            // RFC 5321 §4.5.4.1: give up after the queue lifetime, with the last reason.
            return new DeliveryOutcome.Bounced($"4.4.7 Delivery time expired after {options.MaxQueueLifetime}; last error: {d.Reason}") { Via = d.Via };
        }
        if (outcome is DeliveryOutcome.Deferred { Crowded: true } refused && r.Attempts <= RetrySchedule.CrowdedQuickRetries)
        {
            // "Too many connections" with none of ours under way: those we just closed may
            // still count there. Soon again, a few times, before the usual backoff.
            return refused with { RetryAt = RetrySchedule.Crowded(message.Id, r.Attempts, after, options.RetryInitialDelay) };
        }
        if (outcome is DeliveryOutcome.Deferred deferred)
        {
            return deferred with { RetryAt = RetrySchedule.Deferred(message.Id, r.Attempts, after, options.RetryInitialDelay, options.RetryMaxDelay) };
        }
        return outcome;
    }

    /// <summary>
    /// Local recipients that are due, handed to the LMTP server (Delivery.Lmtp) in one transaction.
    /// An alias (or a +tag) first becomes its final addresses, each a recipient of its own, so that
    /// each account's reply decides for it alone and a retry never repeats a copy already delivered.
    /// </summary>
    private async Task<bool> DeliverByLmtpAsync(SpooledMessage message, DeliveryState state, DateTimeOffset now, Configuration.DeliveryOptions options, CancellationToken cancellationToken)
    {
        bool Due(RecipientState r) => r.Local && (r.Status == RecipientStatus.Pending || (r.Status == RecipientStatus.Deferred && (r.NextAttempt ?? now) <= now));
        var accounts = new List<RecipientState>();
        var changed = false;
        foreach (var r in state.Recipients.Where(Due).ToList())
        {
            changed = true;
            // A recipient an alias gave is an account already: not expanded again.
            var targets = r.Original is null ? addressBook.Expand(r.Address) : [(r.Address, true)];
            if (targets.Count == 0)
            {
                // Valid at RCPT (see DeliverOne): never discarded on that, retried until the queue lifetime.
                r.LastAttempt = now;
                Record(message, r, new DeliveryOutcome.Deferred("recipient is not known at the moment (account or alias removed?)") { RetryAt = RetrySchedule.Short(message.Id, now) }, "lmtp", now);
                continue;
            }
            if (targets is [var only] && only.Local && only.Address.Equals(r.Address, StringComparison.OrdinalIgnoreCase))
            {
                if (!addressBook.Accounts.Exists(only.Address))
                {
                    // Postmaster with neither account nor alias (RFC 5321 §4.5.1): the LMTP server
                    // knows no such user, so it gets its Maildir as without LMTP; never lost.
                    r.LastAttempt = now;
                    Record(message, r, DeliverOne(message, r, state, discard: false), "local", now);
                    continue;
                }
                accounts.Add(r);
                continue;
            }
            foreach (var (address, local) in targets)
            {
                if (!state.Recipients.Any(x => x.Address.Equals(address, StringComparison.OrdinalIgnoreCase) && x.Local == local))
                {
                    var added = new RecipientState { Address = address, Local = local, Original = r.Address };
                    state.Recipients.Add(added);
                    if (local)
                    {
                        accounts.Add(added);
                    }
                }
            }
            r.LastAttempt = now;
            Record(message, r, new DeliveryOutcome.Delivered($"expanded to {string.Join(' ', targets.Select(t => t.Address))}"), "lmtp", now);
        }
        if (accounts.Count == 0)
        {
            return changed;
        }
        var outcomes = await lmtp!.DeliverAsync(message, accounts.Select(a => a.Address).ToList(), LmtpHeader(message.Envelope), cancellationToken).ConfigureAwait(false);
        var after = time.GetUtcNow();
        for (var i = 0; i < accounts.Count; i++)
        {
            Record(message, accounts[i], Settle(message, accounts[i], outcomes[i].Outcome, after, options), "lmtp", after);
        }
        return true;
    }

    /// <summary>
    /// What local delivery puts on top for the LMTP server (which adds Return-Path and Delivered-To
    /// itself): the Authentication-Results field, and for a folder other than the inbox (DMARC
    /// quarantine) an X-Postern-Folder field a Sieve rule files by (README).
    /// </summary>
    private static string? LmtpHeader(Envelope envelope) =>
        envelope.Folder is null ? envelope.AuthenticationResults : $"X-Postern-Folder: {envelope.Folder}\r\n{envelope.AuthenticationResults}";

    private static string DomainOf(string address) => address[(address.LastIndexOf('@') + 1)..];

    private async Task WakeWhenFreeAsync(QueueId id, string destination)
    {
        await _destinations.WhenFreeAsync(destination).ConfigureAwait(false);
        EnqueueRetry(id);
    }

    private void Record(SpooledMessage message, RecipientState r, DeliveryOutcome outcome, string transport, DateTimeOffset now)
    {
        var delay = Math.Round((now - message.Envelope.Received).TotalSeconds, 3);
        var status = outcome switch { DeliveryOutcome.Delivered => "sent", DeliveryOutcome.Deferred => "deferred", _ => "bounced" };
        Metrics.Deliveries.Add(1, new("relay", transport), new("status", status));
        switch (outcome)
        {
            case DeliveryOutcome.Delivered d:
                r.Status = RecipientStatus.Delivered;
                r.Detail = d.Detail;
                r.NextAttempt = null;
                r.PeerHandlesDsn = d.PeerHandlesDsn;
                break;
            case DeliveryOutcome.Bounced b:
                r.Status = RecipientStatus.Bounced;
                r.Detail = b.Reply;
                r.NextAttempt = null;
                break;
            case DeliveryOutcome.Deferred f:
                r.Status = RecipientStatus.Deferred;
                r.Detail = f.Reason;
                r.NextAttempt = f.RetryAt;
                break;
        }
        var via = outcome.Via;
        Log.Delivery(logger, message.Id.Value, r.Address, r.Original ?? r.Address, transport, via?.Host ?? "-", via?.Address?.ToString() ?? "-", via?.Port ?? 0,
            via?.Tls ?? "-", status, delay, r.Detail ?? "");
    }

    private DeliveryOutcome DeliverOne(SpooledMessage message, RecipientState r, DeliveryState state, bool discard)
    {
        if (discard)
        {
            return new DeliveryOutcome.Delivered("discarded");
        }
        // A recipient an alias gave is an account already: not expanded again.
        var targets = r.Original is null ? addressBook.Expand(r.Address) : [(r.Address, true)];
        if (targets.Count == 0)
        {
            // The address was valid at RCPT. It may have been removed since, or the passwd file may be
            // unreadable for a moment: never discard acknowledged mail on that. Retry; the queue
            // lifetime decides when it turns into a bounce.
            return new DeliveryOutcome.Deferred("recipient is not known at the moment (account or alias removed?)") { RetryAt = RetrySchedule.Short(message.Id, time.GetUtcNow()) };
        }
        if (!(targets is [var only] && only.Local && only.Address.Equals(r.Address, StringComparison.OrdinalIgnoreCase)))
        {
            // An alias (or a +tag): each final address becomes a recipient of its own, so that each
            // copy's delivery is recorded alone and a retry of one that failed never writes again
            // the copies already delivered (issue 12). Remote ones go out by the outbound side.
            foreach (var (address, local) in targets)
            {
                if (!state.Recipients.Any(x => x.Address.Equals(address, StringComparison.OrdinalIgnoreCase) && x.Local == local))
                {
                    state.Recipients.Add(new RecipientState { Address = address, Local = local, Original = r.Address });
                }
            }
            return new DeliveryOutcome.Delivered($"expanded to {string.Join(' ', targets.Select(t => t.Address))}");
        }
        try
        {
            using var content = Spool.OpenMessage(message);
            var file = maildir.Deliver(r.Address, message.Envelope.From, content, message.MessageLength, message.Envelope.Folder, message.Envelope.AuthenticationResults);
            return new DeliveryOutcome.Delivered($"{r.Address}:{Path.GetFileName(file)}");
        }
        catch (IOException e)
        {
            return new DeliveryOutcome.Deferred(e.Message) { RetryAt = RetrySchedule.Short(message.Id, time.GetUtcNow()) };
        }
        catch (UnauthorizedAccessException e)
        {
            return new DeliveryOutcome.Deferred(e.Message) { RetryAt = RetrySchedule.Short(message.Id, time.GetUtcNow()) };
        }
    }
}
