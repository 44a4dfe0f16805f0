using System.Net;
using Postern.Server.Limits;
using Postern.Server.Smtp;

namespace Postern.Server.Listening;

/// <summary>
/// The open sessions of one listener and its cap (issue 12: one cap shared by every listener let
/// idle connections on port 25 lock authenticated users out of 587 and 465). Each listener has its
/// own: Limits.MaxConnections for an mx listener, Limits.MaxConnectionsSubmission for a submission
/// or submissions one.
///
/// Overload sheds the idle, never the working. When the listener is full, a new connection takes
/// the slot of an idle session (no command running, no transaction open, idle at least
/// <see cref="MinIdleToShed"/>), which is closed with 421 4.7.0: of the client (IPv4 address, IPv6
/// /64) with the most sessions here, the one idle longest. Nobody idle: the new connection is
/// refused as before. Under pressure (more than <see cref="StressFraction"/> of the cap open),
/// sessions idle longer than <see cref="StressIdleTimeout"/> are shed too, at most once a second
/// when connections arrive: Postfix's stress mode, which cuts smtpd_timeout from 300 s to 10 s.
/// Choosing a victim scans the open sessions (10,000 by default on port 25: well under a
/// millisecond), only when the listener is full.
/// </summary>
public sealed class ListenerSlots(Func<int> cap, TimeProvider time)
{
    /// <summary>A client between two commands of its dialogue waits on the network round trip; it is not idle yet.</summary>
    public static readonly TimeSpan MinIdleToShed = TimeSpan.FromSeconds(1);

    /// <summary>The idle time that is enough under pressure (Postfix's stress-mode smtpd_timeout).</summary>
    public static readonly TimeSpan StressIdleTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Open sessions, as a fraction of the cap, from which the listener is under pressure (Postfix: 80 %).</summary>
    public const double StressFraction = 0.8;

    private readonly HashSet<SmtpSession> _open = [];
    private readonly Dictionary<IPAddress, int> _perClient = [];
    private readonly object _gate = new();
    private DateTimeOffset _lastSweep = DateTimeOffset.MinValue;

    public int Open
    {
        get
        {
            lock (_gate)
            {
                return _open.Count;
            }
        }
    }

    public int Cap => cap();

    /// <summary>What a new connection got: its slot, and the sessions to shed for it (already out of the table).</summary>
    public readonly record struct Admission(bool Admitted, IReadOnlyList<(SmtpSession Session, TimeSpan Idle, string Reason)> Shed);

    /// <summary>Gives <paramref name="session"/> a slot if there is one, or one an idle session is shed from.</summary>
    public Admission TryAdmit(SmtpSession session)
    {
        var now = time.GetUtcNow();
        var max = cap();
        var shed = new List<(SmtpSession, TimeSpan, string)>();
        lock (_gate)
        {
            if (_open.Count > max * StressFraction && now - _lastSweep >= TimeSpan.FromSeconds(1))
            {
                _lastSweep = now;
                foreach (var s in _open.ToList())
                {
                    if (s.IdleSince is { } since && now - since >= StressIdleTimeout)
                    {
                        Remove(s);
                        shed.Add((s, now - since, "idle under pressure"));
                    }
                }
            }
            if (_open.Count >= max)
            {
                SmtpSession? victim = null;
                var victimClients = 0;
                var victimSince = DateTimeOffset.MaxValue;
                foreach (var s in _open)
                {
                    if (s.IdleSince is not { } since || now - since < MinIdleToShed)
                    {
                        continue;
                    }
                    var clients = _perClient[ClientKey.For(s.ClientIp)];
                    if (clients > victimClients || (clients == victimClients && since < victimSince))
                    {
                        (victim, victimClients, victimSince) = (s, clients, since);
                    }
                }
                if (victim is null)
                {
                    return new Admission(false, shed);
                }
                Remove(victim);
                shed.Add((victim, now - victimSince, "listener full"));
            }
            _open.Add(session);
            var key = ClientKey.For(session.ClientIp);
            _perClient[key] = _perClient.GetValueOrDefault(key) + 1;
            session.Admitted(now);
        }
        return new Admission(true, shed);
    }

    /// <summary>The session ended (a shed one left the table already).</summary>
    public void Release(SmtpSession session)
    {
        lock (_gate)
        {
            Remove(session);
        }
    }

    private void Remove(SmtpSession session)
    {
        if (!_open.Remove(session))
        {
            return;
        }
        var key = ClientKey.For(session.ClientIp);
        if (_perClient[key] <= 1)
        {
            _perClient.Remove(key);
        }
        else
        {
            _perClient[key]--;
        }
    }
}
