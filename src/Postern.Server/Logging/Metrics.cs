using System.Diagnostics.Metrics;

namespace Postern.Server.Logging;

/// <summary>
/// SPEC §7: metrics per listener and outcome, with System.Diagnostics.Metrics (read them with
/// `dotnet-counters monitor -n postern --counters Postern` or any OpenTelemetry exporter).
/// Tags are bounded sets (listener names from the configuration, reply codes, statuses), never client data.
/// </summary>
public static class Metrics
{
    public static readonly Meter Meter = new("Postern", "1.0");

    /// <summary>Connections accepted or refused at connect, by listener and result (accepted, refused).</summary>
    public static readonly Counter<long> Connections = Meter.CreateCounter<long>("postern.smtp.connections", "{connection}");

    /// <summary>Refusals sent, by listener and reply code.</summary>
    public static readonly Counter<long> Rejections = Meter.CreateCounter<long>("postern.smtp.rejections", "{reply}");

    /// <summary>Messages acknowledged with 250 (durable), by listener.</summary>
    public static readonly Counter<long> MessagesAccepted = Meter.CreateCounter<long>("postern.smtp.messages_accepted", "{message}");

    /// <summary>Octets of messages acknowledged, by listener.</summary>
    public static readonly Counter<long> BytesAccepted = Meter.CreateCounter<long>("postern.smtp.bytes_accepted", "By");

    /// <summary>Delivery attempts per recipient, by relay (local, discard) and status (sent, deferred, bounced).</summary>
    public static readonly Counter<long> Deliveries = Meter.CreateCounter<long>("postern.delivery.attempts", "{recipient}");

    /// <summary>Sessions open now, by listener.</summary>
    public static readonly UpDownCounter<long> OpenSessions = Meter.CreateUpDownCounter<long>("postern.smtp.sessions_open", "{session}");
}
