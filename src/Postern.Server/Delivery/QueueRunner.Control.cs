using Postern.Server.Logging;
using Postern.Server.Queue;

namespace Postern.Server.Delivery;

/// <summary>
/// `postern queue flush|retry|hold|release|bounce|delete` while the server runs. hold and release
/// are marker files and delete removes the files, all at once. retry and bounce become an order on
/// the message, which the worker that takes it next applies before anything else (so the state of
/// a message one worker is delivering is never changed under its feet): retry makes deferred
/// recipients due now, bounce fails every recipient not yet delivered (the usual notification code
/// then sends the DSN and the message leaves the queue).
/// </summary>
public sealed partial class QueueRunner
{
    // How long a request waits for the worker; then the command hears "pending" (a long attempt is under way).
    private static readonly TimeSpan OrderPatience = TimeSpan.FromSeconds(5);
    private readonly Dictionary<string, Order> _orders = [];

    /// <summary>Applies one request from `postern queue`; every outcome is logged (event=queue_control).</summary>
    public async Task<ControlReply> ApplyAsync(ControlRequest request, CancellationToken stop)
    {
        if (request.Action == "flush")
        {
            return Flush();
        }
        if (request.Id is null || !QueueId.IsValid(request.Id) || control is null)
        {
            return new ControlReply("failed", $"'{request.Id}' is not a queue id", Ok: false);
        }
        var id = new QueueId(request.Id);
        // hold, release, delete: the files, at once. The pass asked for after a release or a delete
        // delivers the message, or (deleted) removes a state file a worker busy with it wrote meanwhile.
        var reply = QueueActions.OnFiles(spool, control, id, request.Action, AppliedBy.Server);
        if (reply is not null)
        {
            if (request.Action is "release" or "delete" && reply.Result != "not_found")
            {
                EnqueueRetry(id); // even when it was not held: a look costs little
            }
            if (reply.Result == "deleted")
            {
                Log.Removed(logger, id.Value, "deleted");
            }
        }
        else
        {
            var done = Place(id, request.Action);
            try
            {
                // (Logged by the worker when it applies the order.)
                return await done.WaitAsync(OrderPatience, stop).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                reply = new ControlReply("pending", $"{id} is being delivered right now; the {request.Action} applies as soon as that attempt ends");
            }
            catch (OperationCanceledException)
            {
                reply = new ControlReply("failed", "the server is stopping; try again once it runs (or while it is stopped)", Ok: false);
            }
        }
        Log.QueueControl(logger, id.Value, request.Action, reply.Result, reply.Detail);
        return reply;
    }

    private ControlReply Flush()
    {
        var n = 0;
        var held = 0;
        foreach (var id in spool.ListIds())
        {
            if (control?.IsHeld(id) == true)
            {
                held++;
                continue;
            }
            _ = Place(id, "flush"); // (each logged by its worker)
            n++;
        }
        return QueueActions.Flushed(n, held, AppliedBy.Server);
    }

    /// <summary>Leaves an order for the worker that takes <paramref name="id"/> next, and asks for a pass.</summary>
    private Task<ControlReply> Place(QueueId id, string action)
    {
        var done = new TaskCompletionSource<ControlReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_orders)
        {
            if (!_orders.TryGetValue(id.Value, out var order))
            {
                _orders[id.Value] = order = new Order(id);
            }
            order.Add(action, done);
        }
        EnqueueRetry(id);
        return done.Task;
    }

    private Order? TakeOrder(QueueId id)
    {
        lock (_orders)
        {
            return _orders.Remove(id.Value, out var order) ? order : null;
        }
    }

    /// <summary>Applies retry and bounce (<see cref="QueueActions.OnState"/>) to the state just read; the state is written at once, so a bounce survives a crash.</summary>
    private bool ApplyOrder(SpooledMessage message, DeliveryState state, Order order, DateTimeOffset now)
    {
        var id = message.Id;
        var change = QueueActions.OnState(order.Action, message, state, AppliedBy.Server);
        order.Reply = change.Reply;
        if (change.Bounced.Count > 0)
        {
            var delay = Math.Round((now - message.Envelope.Received).TotalSeconds, 3);
            foreach (var r in change.Bounced)
            {
                Log.Delivery(logger, id.Value, r.Address, r.Original ?? r.Address, "admin", "-", "-", 0, "-", "bounced", delay, r.Detail ?? "");
            }
            if (File.Exists(message.Path))
            {
                spool.WriteState(id, state); // (not for a message deleted meanwhile)
            }
            control?.Release(id); // it leaves the queue as soon as the sender is told
            order.Bounced = change.Bounced.Count;
            return true;
        }
        if (!order.Bounce)
        {
            // A retry is answered at once: the attempt itself may take minutes.
            order.Finish(logger);
        }
        return change.Changed;
    }

    /// <summary>What the bounce reply says once the notifications of the pass are queued.</summary>
    private static void NoteBounceSent(Order order, SpooledMessage message, IReadOnlyList<SpooledMessage> dsns)
    {
        if (order.Bounced == 0)
        {
            return;
        }
        var id = message.Id;
        order.Reply = dsns.Count > 0
            ? new ControlReply("bounced", $"{order.Bounced} recipient(s) of {id} bounced; the bounce to <{dsns[0].Envelope.Recipients[0].Address}> is queued as {dsns[0].Id}")
            : new ControlReply("bounced", $"{order.Bounced} recipient(s) of {id} bounced; no bounce message was sent (the recipients asked for none with NOTIFY, or it would have been a report about a report)");
    }

    /// <summary>What the administrator asked for one message, and who waits for the answer.</summary>
    private sealed class Order(QueueId id)
    {
        private readonly List<(string Action, TaskCompletionSource<ControlReply> Done)> _waiters = [];

        public QueueId Id => id;
        public bool Bounce => _waiters.Any(w => w.Action == "bounce");
        /// <summary>The strongest action asked: bounce over retry (or flush, a retry of everything).</summary>
        public string Action => Bounce ? "bounce" : _waiters.Count > 0 ? _waiters[0].Action : "retry";
        public int Bounced { get; set; }
        public ControlReply? Reply { get; set; }

        public void Add(string action, TaskCompletionSource<ControlReply> done) => _waiters.Add((action, done));

        /// <summary>Answers everyone waiting (once) and logs what was done.</summary>
        public void Finish(Microsoft.Extensions.Logging.ILogger logger)
        {
            if (_waiters.Count == 0)
            {
                return;
            }
            var reply = Reply ?? new ControlReply("failed", $"the {Action} of {id} was interrupted (see event=delivery_error); it stays queued", Ok: false);
            Log.QueueControl(logger, id.Value, Action, reply.Result, reply.Detail);
            foreach (var (_, done) in _waiters)
            {
                done.TrySetResult(reply);
            }
            _waiters.Clear();
        }
    }
}
