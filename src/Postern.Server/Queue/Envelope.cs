using System.Text.Json;
using System.Text.Json.Serialization;

namespace Postern.Server.Queue;

/// <summary>
/// What SMTP said about a message, kept with it in the spool file (docs/queue-format.md):
/// the reverse path, each forward path with its DSN parameters (RFC 3461), and who sent it.
/// </summary>
public sealed class Envelope
{
    public int Version { get; set; } = 1;
    public string Id { get; set; } = "";
    public DateTimeOffset Received { get; set; }
    /// <summary>The reverse path without brackets; empty for the null path &lt;&gt;.</summary>
    public string From { get; set; } = "";
    /// <summary>7BIT or 8BITMIME (RFC 6152).</summary>
    public string Body { get; set; } = "7BIT";
    public bool SmtpUtf8 { get; set; }
    /// <summary>RFC 3461 RET: FULL, HDRS or null.</summary>
    public string? Ret { get; set; }
    /// <summary>RFC 3461 ENVID, as xtext.</summary>
    public string? EnvId { get; set; }
    public string? AuthUser { get; set; }
    public string ClientIp { get; set; } = "";
    public string Helo { get; set; } = "";
    public string Listener { get; set; } = "";
    /// <summary>RFC 3848 protocol name, e.g. ESMTPSA.</summary>
    public string Protocol { get; set; } = "";
    public List<EnvelopeRecipient> Recipients { get; set; } = [];

    /// <summary>The Authentication-Results field (RFC 8601, whole, CRLF-terminated) that local delivery puts on top of the message; null when none was made.</summary>
    public string? AuthenticationResults { get; set; }

    /// <summary>The Maildir folder local delivery uses instead of the inbox (e.g. "Junk" for DMARC quarantine); null for the inbox.</summary>
    public string? Folder { get; set; }
}

public sealed class EnvelopeRecipient
{
    public string Address { get; set; } = "";
    /// <summary>True when the domain is one of ours: delivered locally; otherwise it goes out.</summary>
    public bool Local { get; set; }
    /// <summary>RFC 3461 NOTIFY as given (e.g. "SUCCESS,FAILURE"), or null.</summary>
    public string? Notify { get; set; }
    /// <summary>RFC 3461 ORCPT as given (addr-type;xtext), or null.</summary>
    public string? ORcpt { get; set; }
}

/// <summary>Where each recipient stands; kept in queue/state/ID once anything happened.</summary>
public sealed class DeliveryState
{
    public List<RecipientState> Recipients { get; set; } = [];
}

public sealed class RecipientState
{
    public string Address { get; set; } = "";
    public bool Local { get; set; }
    /// <summary>pending, delivered, deferred or bounced.</summary>
    public string Status { get; set; } = "pending";
    public string? Detail { get; set; }
    public DateTimeOffset? LastAttempt { get; set; }
    public DateTimeOffset? NextAttempt { get; set; }
    /// <summary>The envelope recipient this one came from (alias expansion), or null.</summary>
    public string? Original { get; set; }

    /// <summary>Delivery attempts so far (the retry delay doubles with each).</summary>
    public int Attempts { get; set; }

    /// <summary>Whether the sender has been told of this recipient's final outcome, when it asked to be (a DSN). Until then the message stays queued.</summary>
    public bool Notified { get; set; }

    /// <summary>Whether the server it was relayed to took over DSN duties (offered DSN).</summary>
    public bool PeerHandlesDsn { get; set; }

    /// <summary>Whether a delay warning went out for this recipient (once, after Delivery.DelayWarningAfter).</summary>
    public bool Warned { get; set; }
}

[JsonSourceGenerationOptions(WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(Envelope))]
[JsonSerializable(typeof(DeliveryState))]
internal sealed partial class QueueJson : JsonSerializerContext
{
}

internal static class EnvelopeCodec
{
    public static byte[] Encode(Envelope e) => JsonSerializer.SerializeToUtf8Bytes(e, QueueJson.Default.Envelope);

    public static Envelope Decode(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize(json, QueueJson.Default.Envelope) ?? throw new JsonException("empty envelope");

    public static byte[] EncodeState(DeliveryState s) => JsonSerializer.SerializeToUtf8Bytes(s, QueueJson.Default.DeliveryState);

    /// <summary>
    /// Reads a state file whole, or throws <see cref="InvalidDataException"/>: the JSON must be one
    /// complete object (a truncated file never is), and each recipient must have an address and a
    /// known status.
    /// </summary>
    public static DeliveryState DecodeState(ReadOnlySpan<byte> json)
    {
        DeliveryState? state;
        try
        {
            state = JsonSerializer.Deserialize(json, QueueJson.Default.DeliveryState);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"state is not valid JSON ({json.Length} octets): {e.Message}", e);
        }
        if (state?.Recipients is not { Count: > 0 } recipients)
        {
            throw new InvalidDataException($"state has no recipients ({json.Length} octets)");
        }
        foreach (var r in recipients)
        {
            if (r is null || string.IsNullOrEmpty(r.Address) || r.Status is not ("pending" or "delivered" or "deferred" or "bounced"))
            {
                throw new InvalidDataException("state has a recipient without an address or with an unknown status");
            }
        }
        return state;
    }
}
