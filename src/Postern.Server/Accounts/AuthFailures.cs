using System.Net;
using Postern.Server.Configuration;
using Postern.Server.Limits;

namespace Postern.Server.Accounts;

/// <summary>
/// The AUTH brute-force defence (SPEC §4, issue 4), without fail2ban. Failures are counted in
/// Accounts.FailureWindow per client address, per IPv6 /64 (one customer's network, so rotating
/// through it does not help) and per account (so many addresses guessing one password do not
/// either). Each failure's 535 comes later than the one before (Accounts.FailureDelay, doubling,
/// at most 8 s). Too many failures ban the key: the address for Accounts.LockoutDuration, twice
/// that for its next ban, and so on up to Accounts.MaxLockoutDuration (a repeat offender is
/// remembered for a day). Bans live in <see cref="BanList"/> (DATA/bans.json): they survive a
/// restart and `postern bans list|release` sees them. An account ban does not lock out its owner:
/// addresses the account logged in from lately are let through (kept in memory, bounded).
/// The failure tables are attacker-fed, so they are bounded too.
/// </summary>
public sealed class AuthFailures(TimeProvider time, Func<AccountsOptions> current, BanList bans)
{
    private const int MaxEntries = 50_000;
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan KnownGoodFor = TimeSpan.FromDays(30);
    private readonly Dictionary<string, Entry> _entries = [];
    private readonly Dictionary<(string User, IPAddress Client), DateTimeOffset> _knownGood = [];
    private readonly object _gate = new();

    private sealed class Entry
    {
        public int Failures;
        public DateTimeOffset WindowStart;
    }

    public BanList Bans => bans;

    // The settings in force (a reload changes them); the failures counted and the bans stay.
    private AccountsOptions options => current();

    /// <summary>The keys one attempt counts against: ip, then net (IPv6 only), then user.</summary>
    public static IEnumerable<string> Keys(IPAddress ip, string? user)
    {
        ip = ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip;
        yield return $"ip:{ip}";
        if (ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            yield return $"net:{ClientKey.Describe(ClientKey.For(ip))}";
        }
        if (!string.IsNullOrEmpty(user))
        {
            yield return $"user:{user.ToLowerInvariant()}";
        }
    }

    /// <summary>The ban that stops this attempt, or null. An account ban spares the addresses its owner uses.</summary>
    public Ban? Banned(IPAddress ip, string? user)
    {
        foreach (var key in Keys(ip, user))
        {
            if (bans.Active(key) is { } ban && !(key.StartsWith("user:", StringComparison.Ordinal) && IsKnownGood(user!, ip)))
            {
                return ban;
            }
        }
        return null;
    }

    /// <summary>A successful login: this address is known to the account's owner from now on.</summary>
    public void RecordSuccess(IPAddress ip, string user)
    {
        var now = time.GetUtcNow();
        lock (_gate)
        {
            if (_knownGood.Count >= MaxEntries)
            {
                foreach (var k in _knownGood.Where(kv => now - kv.Value > KnownGoodFor).Select(kv => kv.Key).ToList())
                {
                    _knownGood.Remove(k);
                }
                foreach (var k in _knownGood.Keys.Take(_knownGood.Count >= MaxEntries ? MaxEntries / 8 : 0).ToList())
                {
                    _knownGood.Remove(k);
                }
            }
            _knownGood[(user.ToLowerInvariant(), ClientKey.For(ip))] = now;
        }
    }

    private bool IsKnownGood(string user, IPAddress ip)
    {
        lock (_gate)
        {
            return _knownGood.TryGetValue((user.ToLowerInvariant(), ClientKey.For(ip)), out var at) && time.GetUtcNow() - at < KnownGoodFor;
        }
    }

    /// <summary>
    /// Records a failure; returns the failures of the address in the window, the delay before the
    /// 535, and the bans this failure started (each already in the ban list).
    /// </summary>
    public (int Failures, TimeSpan Delay, IReadOnlyList<Ban> NewBans) RecordFailure(IPAddress ip, string? user)
    {
        var options = current(); // one set of settings for the whole failure, even across a reload
        var now = time.GetUtcNow();
        var newBans = new List<Ban>();
        var ipFailures = 0;
        foreach (var key in Keys(ip, user))
        {
            int failures;
            lock (_gate)
            {
                if (!_entries.TryGetValue(key, out var e) || now - e.WindowStart > options.FailureWindow)
                {
                    if (_entries.Count >= MaxEntries)
                    {
                        Prune(now);
                    }
                    e = new Entry { WindowStart = now };
                    _entries[key] = e;
                }
                failures = ++e.Failures;
            }
            if (key.StartsWith("ip:", StringComparison.Ordinal))
            {
                ipFailures = failures;
            }
            var limit = key[..key.IndexOf(':')] switch
            {
                "net" => options.MaxAuthFailures * 4,
                "user" => options.MaxAuthFailuresPerAccount,
                _ => options.MaxAuthFailures,
            };
            // At the limit, or past it when a reload lowered the limit under a count already made.
            if (failures >= limit && bans.Active(key) is null)
            {
                var level = bans.Level(key) + 1;
                var length = TimeSpan.FromTicks((long)Math.Min(options.LockoutDuration.Ticks * Math.Pow(2, Math.Min(level - 1, 20)), options.MaxLockoutDuration.Ticks));
                var ban = new Ban(key, now, now + length, level, failures, $"{failures} failed AUTH in {options.FailureWindow}");
                bans.Add(ban);
                newBans.Add(ban);
                lock (_gate)
                {
                    _entries.Remove(key); // the ban takes over; counting starts again after it
                }
            }
        }
        var factor = Math.Pow(2, Math.Min(Math.Max(ipFailures, 1) - 1, 10));
        var delay = TimeSpan.FromTicks((long)Math.Min(options.FailureDelay.Ticks * factor, MaxDelay.Ticks));
        return (ipFailures, delay, newBans);
    }

    private void Prune(DateTimeOffset now)
    {
        foreach (var (key, e) in _entries)
        {
            if (now - e.WindowStart > options.FailureWindow)
            {
                _entries.Remove(key);
            }
        }
        if (_entries.Count >= MaxEntries)
        {
            // Still full of live entries: forget an eighth rather than grow without bound.
            foreach (var key in _entries.Keys.Take(MaxEntries / 8).ToList())
            {
                _entries.Remove(key);
            }
        }
    }
}
