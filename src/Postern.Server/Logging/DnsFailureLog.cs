using Microsoft.Extensions.Logging;
using Postern.MailAuth.Dns;

namespace Postern.Server.Logging;

/// <summary>
/// Logs DNS questions that got no usable answer (mail authentication and MX lookups), naming the
/// server that failed: at most one <c>dns_failed</c> line per server a minute, with the number of
/// failures it stands for, so a dead resolver under a flood of mail is one line a minute, not thousands.
/// </summary>
public sealed class DnsFailureLog(ILogger logger, TimeProvider time)
{
    private static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    // Keyed by server: the configured ones (Dns.Servers or the system's), so bounded.
    private readonly Dictionary<string, (DateTimeOffset Logged, int Suppressed)> _last = new(StringComparer.Ordinal);

    public void Report(DnsFailure failure)
    {
        var now = time.GetUtcNow();
        int suppressed;
        lock (_last)
        {
            if (_last.TryGetValue(failure.Server, out var last) && now - last.Logged < Interval)
            {
                _last[failure.Server] = (last.Logged, last.Suppressed + 1);
                return;
            }
            suppressed = last.Suppressed;
            _last[failure.Server] = (now, 0);
        }
        Log.DnsFailed(logger, failure.Server, failure.Name, failure.Type, failure.Reason, suppressed);
    }
}
