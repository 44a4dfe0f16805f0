using System.Net;
using Postern.Server.Configuration;
using Postern.Server.Limits;

namespace Postern.Server.Accounts;

/// <summary>
/// The AUTH brute-force defence (SPEC §4, issues 4 and 12), without fail2ban. Failures are counted
/// in Accounts.FailureWindow per client address, per IPv6 /64 (one customer's network, so rotating
/// through it does not help) and per account (so many addresses guessing one password do not
/// either). Each failure's 535 comes later than the one before (Accounts.FailureDelay, doubling,
/// at most 8 s). Too many failures ban the key: the address for Accounts.LockoutDuration, twice
/// that for its next ban, and so on up to Accounts.MaxLockoutDuration (a repeat offender is
/// remembered for a day). Bans live in <see cref="BanList"/> (DATA/bans.json): they survive a
/// restart and `postern bans list|release` sees them.
///
/// Races: an attempt is reserved (<see cref="Begin"/>) on every key it counts against before its
/// password is checked, and a key admits an attempt only while its failures plus the attempts in
/// flight are under its limit, so however many sessions race, no more than the limit of real
/// checks ever run. <see cref="Attempt.Failed"/> or <see cref="Attempt.Succeeded"/> settles it;
/// disposing an unsettled one (the client left) gives the reservation back.
///
/// Enumeration: a locked account (banned, or its reservations taken) is answered as an unknown
/// name is, 535 after the same delay and the same dummy hashing, and counts against the address.
/// Its owner is spared: addresses the account logged in from (<see cref="KnownAddresses"/>,
/// DATA/logins.json, kept across restarts) are held only to the address limits.
/// The failure tables are attacker-fed, so they are bounded too.
/// </summary>
public sealed class AuthFailures(TimeProvider time, Func<AccountsOptions> current, BanList bans, KnownAddresses known)
{
    private const int MaxEntries = 50_000;
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(8);
    private readonly Dictionary<string, Entry> _entries = [];
    private readonly Lock _banning = new();
    private readonly object _gate = new();

    /// <summary>The addresses each account logged in from (spared by its lockout).</summary>
    public KnownAddresses Known => known;

    private sealed class Entry
    {
        public int Failures;
        public int InFlight;
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

    private static bool IsUserKey(string key) => key.StartsWith("user:", StringComparison.Ordinal);

    private static int Limit(AccountsOptions options, string key) => key[..key.IndexOf(':')] switch
    {
        "net" => options.MaxAuthFailures * 4,
        "user" => options.MaxAuthFailuresPerAccount,
        _ => options.MaxAuthFailures,
    };

    /// <summary>The ban on the address (or its /64) that stops an attempt from it, or null.</summary>
    public Ban? Banned(IPAddress ip)
    {
        foreach (var key in Keys(ip, null))
        {
            if (bans.Active(key) is { } ban)
            {
                return ban;
            }
        }
        return null;
    }

    /// <summary>What <see cref="Begin"/> decided.</summary>
    public enum Verdict
    {
        /// <summary>Check the password, then settle the attempt.</summary>
        Check,

        /// <summary>The address (or its /64) is banned or has as many attempts in flight as it may still fail: 454, nothing reserved.</summary>
        AddressLimit,

        /// <summary>The account is locked to this address: do not check its password, answer as for an unknown name, settle as a failure.</summary>
        AccountLocked,
    }

    /// <summary>
    /// Reserves an attempt from <paramref name="ip"/> at <paramref name="account"/> (an existing
    /// account, or null: names that are no account are not counted against a name, or random names
    /// would fill the ban list). Atomic with every other Begin and settle.
    /// </summary>
    public Attempt Begin(IPAddress ip, string? account)
    {
        var options = current();
        var now = time.GetUtcNow();
        // An account's owner, from an address she logged in from, is held to the address limits only.
        var user = account is not null && !known.Contains(account, ip) ? account : null;
        lock (_gate)
        {
            string? blocking = null;
            var accountLocked = false;
            foreach (var key in Keys(ip, user))
            {
                // Under the gate: a ban is added before its key's count is cleared (Settle), so a
                // key is never seen both unbanned and with its count gone.
                var full = bans.Active(key) is not null || (_entries.TryGetValue(key, out var e) && Live(e, now, options)
                    ? e.Failures + e.InFlight
                    : 0) >= Limit(options, key);
                if (full && IsUserKey(key))
                {
                    accountLocked = true;
                }
                else if (full)
                {
                    blocking = key;
                    break;
                }
            }
            if (blocking is not null)
            {
                return new Attempt(this, ip, [], Verdict.AddressLimit, blocking);
            }
            var reserved = Keys(ip, accountLocked ? null : user).ToList();
            foreach (var key in reserved)
            {
                Take(key, now, options).InFlight++;
            }
            return new Attempt(this, ip, reserved, accountLocked ? Verdict.AccountLocked : Verdict.Check, accountLocked ? $"user:{user}" : null);
        }
    }

    private static bool Live(Entry e, DateTimeOffset now, AccountsOptions options) => now - e.WindowStart <= options.FailureWindow;

    /// <summary>The entry of <paramref name="key"/> in its current window (a new window keeps the attempts in flight). Under the gate.</summary>
    private Entry Take(string key, DateTimeOffset now, AccountsOptions options)
    {
        if (!_entries.TryGetValue(key, out var e))
        {
            if (_entries.Count >= MaxEntries)
            {
                Prune(now);
            }
            e = new Entry { WindowStart = now };
            _entries[key] = e;
        }
        else if (!Live(e, now, options))
        {
            e.Failures = 0;
            e.WindowStart = now;
        }
        return e;
    }

    /// <summary>One reserved AUTH attempt: settle it once with <see cref="Failed"/> or <see cref="Succeeded"/>; Dispose gives an unsettled reservation back.</summary>
    public sealed class Attempt : IDisposable
    {
        private readonly AuthFailures _owner;
        private readonly IPAddress _ip;
        private readonly IReadOnlyList<string> _reserved;
        private bool _settled;

        internal Attempt(AuthFailures owner, IPAddress ip, IReadOnlyList<string> reserved, Verdict verdict, string? limitKey)
        {
            (_owner, _ip, _reserved, Verdict, LimitKey) = (owner, ip, reserved, verdict, limitKey);
            _settled = reserved.Count == 0;
        }

        public Verdict Verdict { get; }

        /// <summary>The key whose limit decided a verdict other than Check (for the log), else null.</summary>
        public string? LimitKey { get; }

        /// <summary>
        /// A failure: counted against the reserved keys; returns the failures of the address in the
        /// window, the delay before the 535, and the bans this failure started (each already in the ban list).
        /// </summary>
        public (int Failures, TimeSpan Delay, IReadOnlyList<Ban> NewBans) Failed()
        {
            if (_settled)
            {
                throw new InvalidOperationException("attempt already settled");
            }
            _settled = true;
            return _owner.Settle(_reserved, failed: true);
        }

        /// <summary>A success: the reservation is given back (a success forgives no failure) and the address is known to the account's owner from now on.</summary>
        public void Succeeded(string user)
        {
            if (!_settled)
            {
                _settled = true;
                _owner.Settle(_reserved, failed: false);
            }
            _owner.Known.Add(user, _ip);
        }

        public void Dispose()
        {
            if (!_settled)
            {
                _settled = true;
                _owner.Settle(_reserved, failed: false);
            }
        }
    }

    private (int Failures, TimeSpan Delay, IReadOnlyList<Ban> NewBans) Settle(IReadOnlyList<string> reserved, bool failed)
    {
        var options = current(); // one set of settings for the whole failure, even across a reload
        var now = time.GetUtcNow();
        var newBans = new List<Ban>();
        var ipFailures = 0;
        foreach (var key in reserved)
        {
            int failures;
            lock (_gate)
            {
                var e = Take(key, now, options);
                e.InFlight = Math.Max(0, e.InFlight - 1);
                if (!failed)
                {
                    continue;
                }
                failures = ++e.Failures;
            }
            if (key.StartsWith("ip:", StringComparison.Ordinal))
            {
                ipFailures = failures;
            }
            // At the limit, or past it when a reload lowered the limit under a count already made.
            // One lock for the check and the ban, so two failures reaching the limit together ban once
            // (not at level + 2); only banning takes it, never a plain attempt (review finding).
            lock (_banning)
            {
                if (failures >= Limit(options, key) && bans.Active(key) is null)
                {
                    var level = bans.Level(key) + 1;
                    var length = TimeSpan.FromTicks((long)Math.Min(options.LockoutDuration.Ticks * Math.Pow(2, Math.Min(level - 1, 20)), options.MaxLockoutDuration.Ticks));
                    var ban = new Ban(key, now, now + length, level, failures, $"{failures} failed AUTH in {options.FailureWindow}");
                    bans.Add(ban);
                    newBans.Add(ban);
                    lock (_gate)
                    {
                        // The ban takes over; counting starts again after it. Attempts still in flight stay counted.
                        if (_entries.TryGetValue(key, out var e))
                        {
                            e.Failures = 0;
                        }
                    }
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
            if (e.InFlight == 0 && now - e.WindowStart > options.FailureWindow)
            {
                _entries.Remove(key);
            }
        }
        if (_entries.Count >= MaxEntries)
        {
            // Still full of live entries: forget an eighth rather than grow without bound.
            foreach (var key in _entries.Where(kv => kv.Value.InFlight == 0).Select(kv => kv.Key).Take(MaxEntries / 8).ToList())
            {
                _entries.Remove(key);
            }
        }
    }
}
