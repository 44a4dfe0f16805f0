using System.Net;

namespace Postern.Server.Limits;

/// <summary>
/// Clients (by <see cref="ClientKey"/>) that passed connection triage recently, so that they pay the
/// greeting pause once per Triage.CacheTime and not on every connection (as Postfix's postscreen
/// cache). Bounded: at capacity, expired entries go first, then an eighth of the table. Kept across
/// reloads; a client is kept for the Triage.CacheTime in force when it passed.
/// </summary>
public sealed class TriageCache(TimeProvider time, int capacity = 100_000)
{
    private readonly Dictionary<IPAddress, DateTimeOffset> _passed = [];

    public bool HasPassed(IPAddress ip)
    {
        var key = ClientKey.For(ip);
        lock (_passed)
        {
            if (_passed.TryGetValue(key, out var until))
            {
                if (until > time.GetUtcNow())
                {
                    return true;
                }
                _passed.Remove(key);
            }
            return false;
        }
    }

    public void Pass(IPAddress ip, TimeSpan keep)
    {
        var now = time.GetUtcNow();
        lock (_passed)
        {
            if (_passed.Count >= capacity)
            {
                foreach (var (k, until) in _passed)
                {
                    if (until <= now)
                    {
                        _passed.Remove(k);
                    }
                }
                foreach (var k in _passed.Keys.Take(_passed.Count >= capacity ? Math.Max(1, capacity / 8) : 0).ToList())
                {
                    _passed.Remove(k);
                }
            }
            _passed[ClientKey.For(ip)] = now + keep;
        }
    }
}
