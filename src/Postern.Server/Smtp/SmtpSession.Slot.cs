using System.Net;
using Postern.Protocol.Replies;
using Postern.Protocol.Session;

namespace Postern.Server.Smtp;

/// <summary>
/// What the listener needs from a session to shed it under overload (Listening/ListenerSlots,
/// issue 12): since when it has been idle, its address, and a way to close it with 421 4.7.0.
/// Shedding reuses the shutdown path (the flag and the read's cancellation), which already ends a
/// session only outside a transaction and only while it waits for the client.
/// </summary>
public sealed partial class SmtpSession
{
    // Set while the session waits for its next command (and from admission to the first): null
    // while a command runs (0). UTC ticks, written by the session and read by the listener with
    // Volatile (a stale value only makes a shed a moment early or late).
    private long _idleSince;
    private volatile SmtpReply? _shedReply;

    /// <summary>
    /// Since when the session has done nothing, or null when it is working: a command is being
    /// handled, or a transaction is open (MAIL given, or data being sent). A working session is never shed.
    /// </summary>
    internal DateTimeOffset? IdleSince => _transaction is null && !_shutdownRequested && Volatile.Read(ref _idleSince) is > 0 and var t
        ? new DateTimeOffset(t, TimeSpan.Zero)
        : null;

    /// <summary>The client's address as the limits count it (IPv4-mapped addresses unmapped).</summary>
    internal IPAddress ClientIp => RemoteIp;

    /// <summary>The session's id in the logs.</summary>
    internal string Id => _id;

    /// <summary>The listener gave this session a slot: it counts as idle from now until its first command.</summary>
    internal void Admitted(DateTimeOffset now) => Volatile.Write(ref _idleSince, now.UtcTicks);

    /// <summary>
    /// Closes the session with 421 4.7.0 as soon as it waits for the client (at once when it does
    /// already). Safe from any thread; a session that started a transaction meanwhile finishes it.
    /// </summary>
    internal void Shed()
    {
        _shedReply = Reply.IdleShed;
        _shutdownRequested = true;
        // Picked as idle, but a command (MAIL, DATA...) may have started meanwhile: the interruption
        // never ends a wait inside a transaction (ReadAsync decides), and the flag ends the session
        // at its next command boundary outside one.
        _timeouts.Interrupt();
    }

    /// <summary>The reply a session ended from outside sends: the shed's, else the shutdown's.</summary>
    private SmtpReply ClosingReply => _shedReply ?? Reply.ShuttingDown;

    /// <summary>The close reason a session ended from outside logs.</summary>
    private string ClosingReason => _shedReply is null ? "shutdown" : "shed idle under load";

    /// <summary>Reads the next command; the session is idle while it waits (the one hook the command loop calls).</summary>
    private async ValueTask<EngineStep?> IdleUntilCommandAsync()
    {
        Volatile.Write(ref _idleSince, _ctx.Time.GetUtcNow().UtcTicks);
        try
        {
            return await ReadCommandAsync();
        }
        finally
        {
            Volatile.Write(ref _idleSince, 0);
        }
    }
}
