namespace Postern.Server.Queue;

/// <summary>One message as `list`, `show` and `summary` see it.</summary>
public sealed record QueueEntry(SpooledMessage Message, DeliveryState? State, bool Held)
{
    /// <summary>Why the state file could not be read (the server sets it aside and holds the message), or null.</summary>
    public string? StateProblem { get; init; }

    /// <summary>Each recipient's state: from queue/state, or all pending when delivery has not begun.</summary>
    public List<RecipientState> Recipients => (State ?? QueueControl.InitialState(Message.Envelope)).Recipients;

    /// <summary>The recipients not yet delivered or bounced.</summary>
    public IEnumerable<RecipientState> Waiting => Recipients.Where(r => r.Status.IsWaiting());

    /// <summary>held (queue/hold), corrupt (the state file is unreadable), deferred (a recipient failed for now) or active (waiting for, or in, delivery).</summary>
    public string Status => Held ? "held" : StateProblem is not null ? "corrupt" : Recipients.Any(r => r.Status == RecipientStatus.Deferred) ? "deferred" : "active";
}

/// <summary>The messages of a spool as `postern queue` and `diag self` list them.</summary>
public static class QueueEntries
{
    /// <summary>Every message of the spool as the queue verbs (and `diag self`) see it; one gone or corrupt meanwhile is skipped.</summary>
    public static IEnumerable<QueueEntry> All(Spool spool)
    {
        var control = new QueueControl(spool.Root);
        foreach (var id in spool.ListIds())
        {
            SpooledMessage m;
            try
            {
                m = spool.Read(id);
            }
            catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
            {
                continue; // gone meanwhile, or corrupt (the server moves it aside)
            }
            yield return Read(spool, control, m);
        }
    }

    /// <summary>A message with its state; an unreadable state file is reported, not taken for "nothing happened yet".</summary>
    public static QueueEntry Read(Spool spool, QueueControl control, SpooledMessage m)
    {
        try
        {
            return new QueueEntry(m, spool.ReadState(m.Id), control.IsHeld(m.Id));
        }
        catch (InvalidDataException bad)
        {
            return new QueueEntry(m, null, control.IsHeld(m.Id)) { StateProblem = bad.Message };
        }
    }
}
