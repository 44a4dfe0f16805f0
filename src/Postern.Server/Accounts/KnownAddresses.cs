using System.Net;
using System.Text.Json;
using Postern.Server.Limits;
using Postern.Server.Storage;

namespace Postern.Server.Accounts;

/// <summary>One address an account logged in from, and when it last did.</summary>
public sealed record KnownAddress(string User, string Client, DateTimeOffset LastLogin);

/// <summary>
/// The addresses each account logged in from successfully within <see cref="KeptFor"/>, in
/// DATA/logins.json, so that an account lockout spares its owner after a restart too (Dovecot and
/// fail2ban practice: lock out the attacker's address, not the owner). A client is counted as the
/// limits count it (<see cref="ClientKey"/>: an IPv4 address, an IPv6 /64).
///
/// Bounded per account, so that nobody's logins push out anybody else's (issue 12: one global cap
/// of 10,000 pairs let one account logging in from many addresses evict every owner): each account
/// keeps its <see cref="PerAccount"/> most recent clients; and at most as many accounts as the user
/// list has plus <see cref="SpareAccounts"/> (accounts removed or renamed within
/// <see cref="KeptFor"/>), the accounts whose last login is oldest making room. Only an account that
/// just authenticated is ever added, so the bound on accounts is reached only through such churn.
///
/// Written seldom and never under the lock the AUTH path takes: a pair changes the file only when it
/// is new or its last recorded login is a day old; a change schedules one write
/// <see cref="WriteDelay"/> later (on the injected clock), so a burst of logins is written once;
/// at most one write is in flight, and a change made during it is written by the next one. The
/// write goes through <see cref="SafeFile"/> (temporary file, fsync, rename, fsync of the directory).
/// A crash within <see cref="WriteDelay"/> of a login loses that login's record, which costs its
/// owner nothing but being held to the account limit until her next login; <see cref="Flush"/> at
/// a stop loses none.
/// </summary>
public sealed class KnownAddresses : IDisposable
{
    /// <summary>The clients each account keeps (the most recent logins).</summary>
    public const int PerAccount = 20;

    /// <summary>The accounts kept beyond the user list's count (removed or renamed within <see cref="KeptFor"/>).</summary>
    public const int SpareAccounts = 1_000;

    public static readonly TimeSpan KeptFor = TimeSpan.FromDays(30);

    /// <summary>How long after a change the file is written (the changes meanwhile are written with it).</summary>
    public static readonly TimeSpan WriteDelay = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan RefreshAfter = TimeSpan.FromDays(1);
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private readonly string _path;
    private readonly TimeProvider _time;
    private readonly Func<int> _accounts;
    private readonly IDurability _durability;
    private readonly Action<string>? _writeFailed;
    private readonly Lock _gate = new();

    // Held for a write only, never with _gate around it: a login waits for no disk.
    private readonly Lock _writing = new();
    private readonly ITimer _timer;
    private readonly Dictionary<string, Dictionary<string, DateTimeOffset>> _known = [];
    private bool _dirty;
    private bool _scheduled;
    private bool _disposed;
    private long _writes;

    /// <param name="path">DATA/logins.json (a damaged or missing file is an empty list).</param>
    /// <param name="time">The clock logins are dated on, and the write delayed on.</param>
    /// <param name="accounts">How many accounts the user list has now (the bound on accounts kept); null: none counted, only <see cref="SpareAccounts"/>.</param>
    /// <param name="durability">The seam of fsync; null: the real one.</param>
    /// <param name="writeFailed">Told why a write failed (the state stays in memory and is written again at the next change or <see cref="Flush"/>).</param>
    public KnownAddresses(string path, TimeProvider time, Func<int>? accounts = null, IDurability? durability = null, Action<string>? writeFailed = null)
    {
        _path = path;
        _time = time;
        _accounts = accounts ?? (() => 0);
        _durability = durability ?? Durability.Instance;
        _writeFailed = writeFailed;
        _timer = time.CreateTimer(_ => WriteScheduled(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        try
        {
            if (File.Exists(path))
            {
                var now = time.GetUtcNow();
                foreach (var k in JsonSerializer.Deserialize<List<KnownAddress>>(File.ReadAllBytes(path), Json) ?? [])
                {
                    if (!string.IsNullOrEmpty(k.User) && !string.IsNullOrEmpty(k.Client) && now - k.LastLogin < KeptFor)
                    {
                        Clients(k.User.ToLowerInvariant())[k.Client] = k.LastLogin;
                    }
                }
                // A file written by an older version (one global cap) or edited by hand keeps to the bounds as well.
                foreach (var user in _known.Keys.ToList())
                {
                    TrimAccount(user);
                }
                TrimAccounts(now, MaxAccounts);
            }
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            // Unreadable: the owners' addresses are learnt again at their next logins.
        }
    }

    private static string Client(IPAddress ip) => ClientKey.Describe(ClientKey.For(ip));

    /// <summary>How many times the file was written (the seam the debounce tests count).</summary>
    public long Writes => Interlocked.Read(ref _writes);

    /// <summary>How many accounts are kept.</summary>
    public int Accounts
    {
        get
        {
            lock (_gate)
            {
                return _known.Count;
            }
        }
    }

    /// <summary>The accounts kept at most now: the user list's count plus <see cref="SpareAccounts"/>.</summary>
    private int MaxAccounts => Math.Max(0, _accounts()) + SpareAccounts;

    /// <summary>Whether <paramref name="user"/> logged in from this client within <see cref="KeptFor"/>.</summary>
    public bool Contains(string user, IPAddress ip)
    {
        lock (_gate)
        {
            return _known.TryGetValue(user.ToLowerInvariant(), out var clients) && clients.TryGetValue(Client(ip), out var at) && _time.GetUtcNow() - at < KeptFor;
        }
    }

    /// <summary>A successful login of <paramref name="user"/> from <paramref name="ip"/>; the file is written <see cref="WriteDelay"/> later.</summary>
    public void Add(string user, IPAddress ip)
    {
        var now = _time.GetUtcNow();
        user = user.ToLowerInvariant();
        var client = Client(ip);
        var max = MaxAccounts; // outside the gate: the user list may look at its file
        lock (_gate)
        {
            var clients = Clients(user);
            if (clients.TryGetValue(client, out var at) && now - at < RefreshAfter)
            {
                return;
            }
            clients[client] = now;
            // Expired logins of this account go; the other accounts' go when they log in, load or trim.
            foreach (var old in clients.Where(kv => now - kv.Value >= KeptFor).Select(kv => kv.Key).ToList())
            {
                clients.Remove(old);
            }
            TrimAccount(user);
            TrimAccounts(now, max);
            _dirty = true;
            if (!_scheduled && !_disposed)
            {
                _scheduled = true;
                _timer.Change(WriteDelay, Timeout.InfiniteTimeSpan);
            }
        }
    }

    /// <summary>Writes the changes not yet written, now (a stop); waits for a write in flight first.</summary>
    public void Flush()
    {
        lock (_writing)
        {
            _ = WriteIfDirty();
        }
    }

    /// <summary>Stops the timer (after the stop's <see cref="Flush"/>); a later change stays in memory.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
        }
        _timer.Dispose();
    }

    private Dictionary<string, DateTimeOffset> Clients(string user)
    {
        if (!_known.TryGetValue(user, out var clients))
        {
            clients = [];
            _known[user] = clients;
        }
        return clients;
    }

    /// <summary>The account's <see cref="PerAccount"/> most recent clients stay. Under the gate.</summary>
    private void TrimAccount(string user)
    {
        var clients = _known[user];
        if (clients.Count > PerAccount)
        {
            foreach (var old in clients.OrderBy(kv => kv.Value).Take(clients.Count - PerAccount).Select(kv => kv.Key).ToList())
            {
                clients.Remove(old);
            }
        }
    }

    /// <summary>Accounts without a login kept go; past the bound, those whose last login is oldest. Under the gate.</summary>
    private void TrimAccounts(DateTimeOffset now, int max)
    {
        if (_known.Count <= max)
        {
            return;
        }
        foreach (var (user, clients) in _known)
        {
            foreach (var old in clients.Where(kv => now - kv.Value >= KeptFor).Select(kv => kv.Key).ToList())
            {
                clients.Remove(old);
            }
            if (clients.Count == 0)
            {
                _known.Remove(user);
            }
        }
        foreach (var user in _known.OrderBy(kv => kv.Value.Values.Max()).Take(Math.Max(0, _known.Count - max)).Select(kv => kv.Key).ToList())
        {
            _known.Remove(user);
        }
    }

    /// <summary>The timer: one write of what changed; a change made during it schedules the next.</summary>
    private void WriteScheduled()
    {
        lock (_writing)
        {
            var written = WriteIfDirty();
            lock (_gate)
            {
                // A failed write waits for the next change or Flush rather than failing every second.
                _scheduled = _dirty && written && !_disposed;
                if (_scheduled)
                {
                    _timer.Change(WriteDelay, Timeout.InfiniteTimeSpan);
                }
            }
        }
    }

    /// <summary>Takes a copy under the gate and writes it outside it; false when the write failed. Under _writing.</summary>
    private bool WriteIfDirty()
    {
        List<KnownAddress> list;
        lock (_gate)
        {
            if (!_dirty)
            {
                return true;
            }
            _dirty = false;
            list = _known.SelectMany(a => a.Value.Select(c => new KnownAddress(a.Key, c.Key, c.Value)))
                .OrderBy(k => k.User, StringComparer.Ordinal).ThenBy(k => k.Client, StringComparer.Ordinal).ToList();
        }
        try
        {
            SafeFile.WriteAllBytes(_path, JsonSerializer.SerializeToUtf8Bytes(list, Json), _durability);
            Interlocked.Increment(ref _writes);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Kept in memory all the same; the next change (or the stop's Flush) writes it again.
            lock (_gate)
            {
                _dirty = true;
            }
            _writeFailed?.Invoke(e.Message);
            return false;
        }
    }
}
