using System.Net;

namespace Postern.Server.Limits;

/// <summary>
/// Open connections in total and per client (SPEC §2 Limits; a client is an IPv4 address or an IPv6
/// /64, see <see cref="ClientKey"/>). Refused connections are answered 421 4.7.0 at connect. The
/// per-client table only holds clients with an open connection, so it is bounded by the total limit.
/// The limits are read at each connection (a reload changes them); the counts of open connections stay.
/// </summary>
public sealed class ConnectionLimiter(Func<(int Total, int PerIp)> limits)
{
    public ConnectionLimiter(int maxTotal, int maxPerIp)
        : this(() => (maxTotal, maxPerIp))
    {
    }

    private readonly Dictionary<IPAddress, int> _perIp = [];
    private readonly object _gate = new();
    private int _total;

    public int Open => Volatile.Read(ref _total);

    public enum Result { Accepted, TooManyTotal, TooManyFromIp }

    public Result TryAcquire(IPAddress ip)
    {
        ip = ClientKey.For(ip);
        var (maxTotal, maxPerIp) = limits();
        lock (_gate)
        {
            if (_total >= maxTotal)
            {
                return Result.TooManyTotal;
            }
            _perIp.TryGetValue(ip, out var n);
            if (n >= maxPerIp)
            {
                return Result.TooManyFromIp;
            }
            _perIp[ip] = n + 1;
            _total++;
            return Result.Accepted;
        }
    }

    public void Release(IPAddress ip)
    {
        ip = ClientKey.For(ip);
        lock (_gate)
        {
            if (_perIp.TryGetValue(ip, out var n))
            {
                if (n <= 1)
                {
                    _perIp.Remove(ip);
                }
                else
                {
                    _perIp[ip] = n - 1;
                }
                _total--;
            }
        }
    }
}
