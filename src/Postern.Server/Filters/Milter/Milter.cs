using System.Net;
using Microsoft.Extensions.Logging;
using Postern.Server.Configuration;
using Postern.Server.Logging;

namespace Postern.Server.Filters.Milter;

/// <summary>
/// One configured milter, shared by every SMTP session (made once at the composition root): its
/// settings, and whether it is down, so that an outage is logged once when it starts and once when
/// it ends rather than per session. <see cref="OpenSession"/> gives the per-session client: libmilter
/// closes its socket when the SMTP client goes, so, like Postfix, Postern connects once per session.
/// </summary>
public sealed class Milter
{
    private readonly ILogger _logger;
    private int _down;
    private long _downSince;

    public Milter(MilterOptions options, TimeProvider time, ILogger logger)
    {
        Options = options;
        Time = time;
        _logger = logger;
        if (!MilterAddress.TryParse(options.Address, out var endPoint))
        {
            throw new ArgumentException($"milter {options.Name}: '{options.Address}' is not unix:/path or host:port", nameof(options));
        }
        EndPoint = endPoint;
    }

    public MilterOptions Options { get; }

    public string Name => Options.Name;

    public EndPoint EndPoint { get; }

    internal TimeProvider Time { get; }

    internal ILogger Logger => _logger;

    /// <summary>Whether the last attempt found it unavailable (for `postern diag` and metrics).</summary>
    public bool IsDown => Volatile.Read(ref _down) == 1;

    /// <summary>A client for one SMTP session; <paramref name="session"/> is the session id for the log.</summary>
    public MilterSession OpenSession(string session) => new(this, session);

    internal void ReportDown(string reason)
    {
        if (Interlocked.Exchange(ref _down, 1) == 0)
        {
            Volatile.Write(ref _downSince, Time.GetTimestamp());
            Log.MilterUnavailable(_logger, Name, Options.Address, Options.DefaultAction.ToString().ToLowerInvariant(), reason);
        }
        else
        {
            Log.MilterStillUnavailable(_logger, Name, reason);
        }
    }

    internal void ReportUp()
    {
        if (Interlocked.Exchange(ref _down, 0) == 1)
        {
            var seconds = (long)Time.GetElapsedTime(Volatile.Read(ref _downSince)).TotalSeconds;
            Log.MilterAvailable(_logger, Name, Options.Address, seconds);
        }
    }
}
