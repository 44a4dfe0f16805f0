namespace Postern.Server.Queue;

/// <summary>Who applies an admin action. It decides only when the effects follow, and so what the reply says.</summary>
public enum AppliedBy
{
    /// <summary>The running server (QueueRunner.Control.cs): delivery, and the bounce, follow in the same pass.</summary>
    Server,

    /// <summary>`postern queue` while no server runs, holding its lock (<see cref="QueueControl.ApplyWithoutServer"/>): the rest follows when the server next starts.</summary>
    Command,
}

/// <summary>What retry, flush or bounce did to a message's state: the reply, whether the state changed (the caller writes it) and the recipients a bounce failed.</summary>
public sealed record StateChange(ControlReply Reply, bool Changed, IReadOnlyList<RecipientState> Bounced);

/// <summary>
/// The one implementation of each `postern queue` action (SPEC §1) on one message, for both paths:
/// the running server and the command with no server running. Hold, release and delete are marker
/// and spool files (<see cref="OnFiles"/>); retry, flush and bounce are a change of the message's
/// state (<see cref="OnState"/>), a pure function the caller applies: the server from the worker that
/// holds the message (so its state never changes under a delivery), the command at once. The paths
/// differ only in who writes the state and when the bounce is sent.
/// </summary>
public static class QueueActions
{
    /// <summary>The actions on one message (flush is on every message).</summary>
    public static bool IsMessageAction(string action) => action is "retry" or "hold" or "release" or "bounce" or "delete";

    /// <summary>
    /// hold, release, delete; and for every action, the check that the message is there (a hold
    /// marker left by a message that is gone is removed). Null when the action is retry or bounce,
    /// which the caller goes on with through <see cref="OnState"/>.
    /// </summary>
    public static ControlReply? OnFiles(Spool spool, QueueControl control, QueueId id, string action, AppliedBy by)
    {
        if (!File.Exists(spool.MessagePath(id)))
        {
            control.Release(id);
            return ControlReply.NotFound(id.Value);
        }
        switch (action)
        {
            case "hold":
                return control.Hold(id)
                    ? new ControlReply("held", $"{id} is on hold: it is not delivered until `postern queue release {id}`")
                    : new ControlReply("already_held", $"{id} was already on hold");
            case "release":
                return !control.Release(id) ? new ControlReply("not_held", $"{id} was not on hold")
                    : by == AppliedBy.Server ? new ControlReply("released", $"{id} is released and goes back to delivery now")
                    : new ControlReply("released", $"{id} is released; the server delivers it when it starts");
            case "delete":
                // At once, even under a worker busy with it (an attempt can take minutes): the worker
                // checks that the file is still there before it writes a state or a report.
                spool.Remove(id);
                control.Release(id);
                return new ControlReply("deleted", $"{id} is deleted");
            case "retry" or "bounce":
                return null;
            default:
                return Unknown(action);
        }
    }

    /// <summary>
    /// retry or flush (deferred recipients are due now), or bounce (every recipient not yet delivered
    /// or bounced fails, so that the sender gets a DSN, and the message then leaves the queue).
    /// Changes <paramref name="state"/> in place. A held message gets no retry: both callers answer
    /// <see cref="QueueControl.OnHold"/> before they read its state; a bounce goes even so.
    /// </summary>
    public static StateChange OnState(string action, SpooledMessage message, DeliveryState state, AppliedBy by)
    {
        var id = message.Id;
        if (action == "bounce")
        {
            var bounced = Bounce(state);
            if (bounced.Count == 0)
            {
                return new(new ControlReply("nothing_to_bounce", $"every recipient of {id} is already delivered or bounced", Ok: false), false, []);
            }
            var sender = QueueControl.Sender(message.Envelope);
            return new(by == AppliedBy.Server
                ? new ControlReply("bounced", $"{bounced.Count} recipient(s) of {id} bounced; the bounce goes to {sender}")
                : new ControlReply("bounced", $"{bounced.Count} recipient(s) of {id} marked as failed; the server is not running, so the bounce to {sender} is sent when it next starts, and the message then leaves the queue"),
                true, bounced);
        }
        if (action is not ("retry" or "flush"))
        {
            return new(Unknown(action), false, []);
        }
        var due = MakeDue(state);
        var made = due > 0 ? $" ({due} deferred recipient(s) made due)" : "";
        return new(by == AppliedBy.Server
            ? new ControlReply("retrying", $"{id} is being tried now{made}")
            : new ControlReply("retrying", $"{id} will be tried as soon as the server starts{made}"),
            due > 0, []);
    }

    /// <summary>The reply to flush: how many messages it reached, and how many on hold it left alone.</summary>
    public static ControlReply Flushed(int messages, int held, AppliedBy by) =>
        new("retrying", (by == AppliedBy.Server ? $"{messages} message(s) are being tried now" : $"{messages} message(s) will be tried as soon as the server starts")
            + (held > 0 ? $"; {held} on hold left alone" : ""))
        { Messages = messages };

    public static ControlReply Unknown(string action) => new("failed", $"unknown action '{action}'", Ok: false);

    /// <summary>retry, flush: deferred recipients are due now (their next attempt is forgotten once). Returns how many.</summary>
    internal static int MakeDue(DeliveryState state)
    {
        var n = 0;
        foreach (var r in state.Recipients.Where(r => r.Status == RecipientStatus.Deferred && r.NextAttempt is not null))
        {
            r.NextAttempt = null;
            n++;
        }
        return n;
    }

    /// <summary>bounce: every recipient not yet delivered or bounced fails, not yet notified, so the sender gets a DSN. Returns them.</summary>
    internal static List<RecipientState> Bounce(DeliveryState state)
    {
        var bounced = state.Recipients.Where(r => !r.Status.IsFinal()).ToList();
        foreach (var r in bounced)
        {
            r.Status = RecipientStatus.Bounced;
            r.Detail = QueueControl.BounceDetail;
            r.NextAttempt = null;
            r.Notified = false;
        }
        return bounced;
    }
}
