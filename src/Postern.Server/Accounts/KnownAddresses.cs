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
/// limits count it (<see cref="ClientKey"/>: an IPv4 address, an IPv6 /64). The file is written
/// only when a pair is new or its last recorded login is a day old, so a busy server writes it
/// about once per user and address per day. Bounded: at most <see cref="Capacity"/> pairs, the
/// oldest logins make room.
/// </summary>
public sealed class KnownAddresses
{
    public const int Capacity = 10_000;
    public static readonly TimeSpan KeptFor = TimeSpan.FromDays(30);
    private static readonly TimeSpan RefreshAfter = TimeSpan.FromDays(1);
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private readonly string _path;
    private readonly TimeProvider _time;
    private readonly object _gate = new();
    private readonly Dictionary<(string User, string Client), DateTimeOffset> _known = [];

    /// <param name="path">DATA/logins.json (a damaged or missing file is an empty list).</param>
    /// <param name="time">The clock logins are dated on.</param>
    public KnownAddresses(string path, TimeProvider time)
    {
        _path = path;
        _time = time;
        try
        {
            if (File.Exists(path))
            {
                foreach (var k in JsonSerializer.Deserialize<List<KnownAddress>>(File.ReadAllBytes(path), Json) ?? [])
                {
                    if (!string.IsNullOrEmpty(k.User) && !string.IsNullOrEmpty(k.Client))
                    {
                        _known[(k.User, k.Client)] = k.LastLogin;
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            // Unreadable: the owners' addresses are learnt again at their next logins.
        }
    }

    private static string Client(IPAddress ip) => ClientKey.Describe(ClientKey.For(ip));

    /// <summary>Whether <paramref name="user"/> logged in from this client within <see cref="KeptFor"/>.</summary>
    public bool Contains(string user, IPAddress ip)
    {
        lock (_gate)
        {
            return _known.TryGetValue((user.ToLowerInvariant(), Client(ip)), out var at) && _time.GetUtcNow() - at < KeptFor;
        }
    }

    /// <summary>A successful login of <paramref name="user"/> from <paramref name="ip"/>.</summary>
    public void Add(string user, IPAddress ip)
    {
        var now = _time.GetUtcNow();
        var key = (user.ToLowerInvariant(), Client(ip));
        lock (_gate)
        {
            if (_known.TryGetValue(key, out var at) && now - at < RefreshAfter)
            {
                return;
            }
            _known[key] = now;
            foreach (var old in _known.Where(kv => now - kv.Value >= KeptFor).Select(kv => kv.Key).ToList())
            {
                _known.Remove(old);
            }
            foreach (var old in _known.OrderBy(kv => kv.Value).Take(Math.Max(0, _known.Count - Capacity)).Select(kv => kv.Key).ToList())
            {
                _known.Remove(old);
            }
            try
            {
                var list = _known.Select(kv => new KnownAddress(kv.Key.User, kv.Key.Client, kv.Value)).OrderBy(k => k.User, StringComparer.Ordinal).ThenBy(k => k.Client, StringComparer.Ordinal).ToList();
                SafeFile.WriteAllBytes(_path, JsonSerializer.SerializeToUtf8Bytes(list, Json), Durability.Instance);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Kept in memory all the same; the next new login writes the file again.
            }
        }
    }
}
