using System.Text.Json;
using System.Text.Json.Serialization;
using Postern.Server.Storage;

namespace Postern.Server.Queue;

/// <summary>What `postern queue` asks of the queue (SPEC §1): flush, retry, hold, release, bounce, delete.</summary>
public sealed class ControlRequest
{
    /// <summary>flush, retry, hold, release, bounce or delete.</summary>
    public string Action { get; set; } = "";

    /// <summary>The message; null for flush.</summary>
    public string? Id { get; set; }

    /// <summary>When the command asked; a server that finds an old request (its command gave up long ago) drops it.</summary>
    public DateTimeOffset Requested { get; set; }
}

/// <summary>
/// What became of a <see cref="ControlRequest"/>. <see cref="Result"/> is one word (held, released,
/// retrying, bounced, deleted, not_found, already_held, not_held, on_hold, nothing_to_bounce,
/// pending, failed); <see cref="Detail"/> says it in a sentence.
/// </summary>
public sealed record ControlReply(string Result, string Detail, bool Ok = true)
{
    /// <summary>Messages the action reached (flush: how many were retried).</summary>
    public int Messages { get; init; }

    /// <summary>reload: the configuration file the server read again (null: the --dev defaults).</summary>
    public string? File { get; init; }

    /// <summary>reload: the settings applied (key paths, e.g. Limits.MaxMessageSize).</summary>
    public List<string>? Changed { get; init; }

    /// <summary>reload: the changed settings that need a restart (their running value is kept).</summary>
    public List<string>? RestartNeeded { get; init; }

    /// <summary>reload: every error of a refused configuration, each naming its key.</summary>
    public List<string>? Errors { get; init; }

    public static ControlReply NotFound(string id) => new("not_found", $"no message {id} in the queue", Ok: false);
}

[JsonSourceGenerationOptions(WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ControlRequest))]
[JsonSerializable(typeof(ControlReply))]
internal sealed partial class ControlJson : JsonSerializerContext
{
}

/// <summary>
/// The administrator's hand on the queue (`postern queue`), kept in files so that it works whether
/// or not the server runs (docs/queue-format.md):
/// <list type="bullet">
/// <item><c>queue/server.lock</c> is held (flock, exclusive) by the running server from start to
/// dispose; a command that gets the lock knows no server runs and acts on the files itself, holding
/// the lock meanwhile so that a server starting cannot race it. Commands take turns on
/// <c>queue/control.lock</c> first, so a server lock found taken is the server's, not another command's.</item>
/// <item><c>queue/hold/ID</c> (empty) marks a message on hold; the delivery workers leave it alone
/// until the marker is gone.</item>
/// <item><c>queue/control/NAME.request</c> hands a request to the running server, which claims it
/// (renames it to <c>.claimed</c>), applies it and answers in <c>NAME.reply</c>. A command that hears
/// nothing withdraws its request (renames it to <c>.withdrawn</c>); of the two renames only one wins.</item>
/// </list>
/// </summary>
public sealed class QueueControl
{
    public const string LockFileName = "server.lock";
    // Requests and replies hold no mail, and the data directory (0700) guards them: readable, so that
    // a command run as root and a server run as its own user understand each other.
    private const UnixFileMode Shared = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    /// <summary>The detail a recipient bounced by `postern queue bounce` carries (and its DSN shows).</summary>
    public const string BounceDetail = "5.0.0 Bounced by the administrator (postern queue bounce)";
    // The watcher is the fast path; the scan catches what it missed (an inotify queue overflow, a
    // file system that does not tell).
    private static readonly TimeSpan ScanInterval = TimeSpan.FromSeconds(2);
    // A request older than this was given up by its command (which waits ten seconds).
    private static readonly TimeSpan StaleAfter = TimeSpan.FromMinutes(1);

    public QueueControl(string queueDirectory)
    {
        QueueDirectory = queueDirectory;
        HoldDir = Path.Combine(queueDirectory, "hold");
        ControlDir = Path.Combine(queueDirectory, "control");
        Directory.CreateDirectory(HoldDir);
        Directory.CreateDirectory(ControlDir);
    }

    public string QueueDirectory { get; }
    public string HoldDir { get; }
    public string ControlDir { get; }
    public string LockPath => Path.Combine(QueueDirectory, LockFileName);

    public bool IsHeld(QueueId id) => File.Exists(Path.Combine(HoldDir, id.Value));

    /// <summary>Puts a message on hold; false when it already was.</summary>
    public bool Hold(QueueId id)
    {
        var path = Path.Combine(HoldDir, id.Value);
        if (File.Exists(path))
        {
            return false;
        }
        // Durable like the rest of the queue: a hold must survive a crash.
        SafeFile.WriteAllBytes(path, [], Durability.Instance);
        return true;
    }

    /// <summary>Takes a message off hold; false when it was not held.</summary>
    public bool Release(QueueId id)
    {
        var path = Path.Combine(HoldDir, id.Value);
        if (!File.Exists(path))
        {
            return false;
        }
        File.Delete(path);
        return true;
    }

    /// <summary>
    /// Takes the server lock if nobody holds it, else null. FileShare.None is an exclusive flock(2)
    /// on Linux, released by the kernel when the process dies, so a crashed server leaves no stale lock.
    /// </summary>
    public FileStream? TryLock() => TryLockFile(LockPath);

    /// <summary>Takes the server lock, waiting up to <paramref name="patience"/> for a `postern queue` command that holds it for a moment; null if it stays taken.</summary>
    public FileStream? Lock(TimeSpan patience) => LockFile(LockPath, patience);

    /// <summary>The commands' lock, which no server takes: `postern queue` and `postern reload` take turns on it.</summary>
    public string CommandLockPath => Path.Combine(QueueDirectory, "control.lock");

    /// <summary>
    /// A command's turn: takes the commands' lock (<see cref="CommandLockPath"/>), waiting up to
    /// <paramref name="patience"/>, then tries the server lock. Commands take turns on the first, so a
    /// server lock found taken is the server's: <see cref="CommandTurn.ServerRuns"/>. When none runs, the
    /// turn holds the server lock until disposed, so that a server starting cannot race what the
    /// command does to the files meanwhile. Null when another command keeps its turn that long.
    /// </summary>
    public CommandTurn? TakeTurn(TimeSpan patience)
    {
        var turn = LockFile(CommandLockPath, patience);
        return turn is null ? null : new CommandTurn(turn, TryLock());
    }

    private static FileStream? TryLockFile(string path)
    {
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException) when (File.Exists(path))
        {
            return null; // EWOULDBLOCK: someone holds it
        }
    }

    private static FileStream? LockFile(string path, TimeSpan patience)
    {
        var deadline = Environment.TickCount64 + (long)patience.TotalMilliseconds;
        while (true)
        {
            var held = TryLockFile(path);
            if (held is not null || Environment.TickCount64 >= deadline)
            {
                return held;
            }
            Thread.Sleep(25);
        }
    }

    // ---- The command's side: hand a request to the running server and wait for its reply. ----

    /// <summary>Writes a request for the running server; returns its name (to wait for the reply).</summary>
    public string Submit(ControlRequest request)
    {
        var name = Guid.NewGuid().ToString("N");
        // Temp file, then rename: the server never sees half a request.
        SafeFile.WriteAllBytes(Path.Combine(ControlDir, name + ".request"), JsonSerializer.SerializeToUtf8Bytes(request, ControlJson.Default.ControlRequest), Durability.Instance, Shared);
        return name;
    }

    /// <summary>
    /// Waits for the server's reply to request <paramref name="name"/>; null when none came within
    /// <paramref name="timeout"/> and the request was withdrawn before the server took it.
    /// </summary>
    public ControlReply? WaitForReply(string name, TimeSpan timeout)
    {
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        var request = Path.Combine(ControlDir, name + ".request");
        var reply = Path.Combine(ControlDir, name + ".reply");
        var taken = false;
        while (true)
        {
            try
            {
                var r = JsonSerializer.Deserialize(File.ReadAllBytes(reply), ControlJson.Default.ControlReply);
                SafeFile.TryDelete(reply);
                return r;
            }
            catch (FileNotFoundException)
            {
            }
            if (Environment.TickCount64 >= deadline)
            {
                if (taken)
                {
                    return new ControlReply("pending", "the server took the request but has not answered yet; its log says what became of it (event=queue_control)");
                }
                try
                {
                    // Withdraw it. The rename races the server's claim (also a rename): one of them wins.
                    var withdrawn = Path.Combine(ControlDir, name + ".withdrawn");
                    File.Move(request, withdrawn);
                    SafeFile.TryDelete(withdrawn);
                    return null;
                }
                catch (FileNotFoundException)
                {
                    // The server took it: give it a little longer to answer.
                    taken = true;
                    deadline += 5000;
                }
            }
            Thread.Sleep(20);
        }
    }

    // ---- The server's side: watch control/, apply each request, answer. ----

    /// <summary>
    /// Applies every request that arrives in control/ until <paramref name="stop"/> fires: noticed by a
    /// file system watcher, and by a scan every two seconds in case the watcher missed one.
    /// </summary>
    public async Task ServeAsync(Func<ControlRequest, CancellationToken, Task<ControlReply>> apply, Action<string, Exception> failed, CancellationToken stop)
    {
        foreach (var leftover in Directory.EnumerateFiles(ControlDir).Where(f => Path.GetExtension(f) is ".claimed" or ".reply" or ".withdrawn"))
        {
            SafeFile.TryDelete(leftover); // claims and replies of a server that stopped; nobody waits for them now
        }
        var running = new List<Task>();
        await DirectoryWatch.RunAsync(
            ControlDir,
            "*.request",
            ScanInterval,
            _ =>
            {
                running.RemoveAll(t => t.IsCompleted);
                try
                {
                    foreach (var file in Directory.EnumerateFiles(ControlDir, "*.request"))
                    {
                        running.Add(HandleAsync(file, apply, failed, stop));
                    }
                }
                catch (IOException e)
                {
                    failed("scan", e);
                }
                return Task.CompletedTask;
            },
            e => failed("watch", e),
            stop).ConfigureAwait(false);
        await Task.WhenAll(running).ConfigureAwait(false);
    }

    private async Task HandleAsync(string file, Func<ControlRequest, CancellationToken, Task<ControlReply>> apply, Action<string, Exception> failed, CancellationToken stop)
    {
        var name = Path.GetFileNameWithoutExtension(file);
        var claimed = Path.Combine(ControlDir, name + ".claimed");
        try
        {
            // The rename is the claim: the command withdraws a request by renaming it too, and only one wins.
            File.Move(file, claimed);
        }
        catch (IOException)
        {
            return;
        }
        try
        {
            ControlReply reply;
            ControlRequest? request = null;
            try
            {
                request = JsonSerializer.Deserialize(File.ReadAllBytes(claimed), ControlJson.Default.ControlRequest);
            }
            catch (JsonException)
            {
            }
            if (request is null)
            {
                reply = new ControlReply("failed", "the request is not readable", Ok: false);
            }
            else if (DateTimeOffset.UtcNow - request.Requested > StaleAfter)
            {
                // Its command gave up long ago (and said so): acting now would surprise everyone.
                SafeFile.TryDelete(claimed);
                return;
            }
            else
            {
                reply = await apply(request, stop).ConfigureAwait(false);
            }
            SafeFile.WriteAllBytes(Path.Combine(ControlDir, name + ".reply"), JsonSerializer.SerializeToUtf8Bytes(reply, ControlJson.Default.ControlReply), Durability.Instance, Shared);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            failed(name, e);
        }
        finally
        {
            SafeFile.TryDelete(claimed);
        }
    }

    // ---- No server running: the command acts on the files itself (holding the lock). ----

    /// <summary>
    /// Applies a request to the spool files while no server runs (the caller holds the lock). What
    /// needs the server — a delivery, a bounce message — happens when it next starts.
    /// </summary>
    public ControlReply ApplyWithoutServer(Spool spool, ControlRequest request, DateTimeOffset now)
    {
        if (request.Action == "flush")
        {
            var n = 0;
            var held = 0;
            foreach (var each in spool.ListIds())
            {
                if (IsHeld(each))
                {
                    held++;
                    continue;
                }
                DeliveryState? s;
                try
                {
                    s = spool.ReadState(each);
                }
                catch (InvalidDataException)
                {
                    SetAsideUnreadableState(spool, each);
                    held++;
                    continue;
                }
                if (s is not null && QueueActions.MakeDue(s) > 0)
                {
                    spool.WriteState(each, s);
                }
                n++;
            }
            return QueueActions.Flushed(n, held, AppliedBy.Command);
        }
        var id = new QueueId(request.Id!);
        if (QueueActions.OnFiles(spool, this, id, request.Action, AppliedBy.Command) is { } done)
        {
            return done;
        }
        if (IsHeld(id) && request.Action != "bounce")
        {
            return OnHold(id); // as the server, which does not take up a held message (a bounce still goes)
        }
        SpooledMessage message;
        try
        {
            message = spool.Read(id);
        }
        catch (InvalidDataException e)
        {
            return new ControlReply("failed", $"{id} is unreadable ({e.Message}); the server moves it to queue/corrupt/ when it starts", Ok: false);
        }
        DeliveryState state;
        try
        {
            state = spool.ReadState(id) ?? InitialState(message.Envelope);
        }
        catch (InvalidDataException e)
        {
            return StateUnreadable(id, SetAsideUnreadableState(spool, id), e.Message);
        }
        var change = QueueActions.OnState(request.Action, message, state, AppliedBy.Command);
        if (change.Changed)
        {
            spool.WriteState(id, state);
        }
        if (change.Bounced.Count > 0)
        {
            Release(id); // it leaves the queue as soon as the sender is told
        }
        return change.Reply;
    }

    /// <summary>
    /// What becomes of a message whose state file is unreadable (<see cref="Spool.ReadState"/> threw):
    /// the file goes to corrupt/ and the message on hold. Neither delivered again (its state may have
    /// said that some recipients had their copy) nor lost: the administrator looks (`postern queue
    /// show` names the file) and releases it (every recipient then gets it again) or deletes it.
    /// Returns where the state file went.
    /// </summary>
    public string SetAsideUnreadableState(Spool spool, QueueId id)
    {
        // Hold first: a crash in between leaves a held message with its bad state, never a free one without.
        Hold(id);
        return spool.MoveStateToCorrupt(id);
    }

    /// <summary>The reply to an action on a message whose state was just set aside.</summary>
    public static ControlReply StateUnreadable(QueueId id, string movedTo, string reason) =>
        new("failed", $"the state file of {id} is unreadable ({reason}); it was moved to {movedTo} and the message is on hold: see `postern queue show {id}`", Ok: false);

    public static ControlReply OnHold(QueueId id) =>
        new("on_hold", $"{id} is on hold: release it first (`postern queue release {id}`)", Ok: false);

    /// <summary>Where a bounce of this message goes: its sender, or the postmaster for a message from &lt;&gt;.</summary>
    public static string Sender(Envelope e) => e.From.Length > 0 ? $"<{e.From}>" : "the postmaster";

    /// <summary>The state of a message nothing has happened to yet: every recipient pending.</summary>
    public static DeliveryState InitialState(Envelope e) => new()
    {
        Recipients = e.Recipients.Select(r => new RecipientState { Address = r.Address, Local = r.Local }).ToList(),
    };
}

/// <summary>What <see cref="QueueControl.TakeTurn"/> holds: the commands' lock, and the server lock when no server runs.</summary>
public sealed class CommandTurn(FileStream turn, FileStream? serverLock) : IDisposable
{
    /// <summary>Whether a server holds the server lock (it answers requests in control/).</summary>
    public bool ServerRuns => serverLock is null;

    public void Dispose()
    {
        serverLock?.Dispose();
        turn.Dispose();
    }
}
