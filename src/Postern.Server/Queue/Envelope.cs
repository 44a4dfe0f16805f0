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
    /// <summary>Where it stands; written as the word pending, delivered, deferred or bounced.</summary>
    public RecipientStatus Status { get; set; }
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

/// <summary>
/// Where one recipient stands (STYLE principle 8): not yet tried, tried and due again, or final.
/// On disk it is one lowercase word (docs/queue-format.md), as it was when it was a string, so state
/// files read the same in both directions; any other word makes the state file unreadable.
/// </summary>
[JsonConverter(typeof(RecipientStatusJson))]
public enum RecipientStatus
{
    /// <summary>Not tried yet.</summary>
    Pending,
    /// <summary>Failed for now; tried again at <see cref="RecipientState.NextAttempt"/> (or at once when null).</summary>
    Deferred,
    /// <summary>Final: delivered, relayed or discarded.</summary>
    Delivered,
    /// <summary>Final: failed for good; the sender gets a DSN.</summary>
    Bounced,
}

public static class RecipientStatusWords
{
    /// <summary>The word for a status, as state files, `postern queue show` and the logs spell it.</summary>
    public static string Word(this RecipientStatus status) => status switch
    {
        RecipientStatus.Pending => "pending",
        RecipientStatus.Deferred => "deferred",
        RecipientStatus.Delivered => "delivered",
        RecipientStatus.Bounced => "bounced",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "not a recipient status"),
    };

    /// <summary>The status a word names (exactly, lowercase), or null.</summary>
    public static RecipientStatus? Parse(string? word) => word switch
    {
        "pending" => RecipientStatus.Pending,
        "deferred" => RecipientStatus.Deferred,
        "delivered" => RecipientStatus.Delivered,
        "bounced" => RecipientStatus.Bounced,
        _ => null,
    };

    /// <summary>Delivered or bounced: nothing more is tried for it.</summary>
    public static bool IsFinal(this RecipientStatus status) => status is RecipientStatus.Delivered or RecipientStatus.Bounced;

    /// <summary>Pending or deferred: still to be delivered.</summary>
    public static bool IsWaiting(this RecipientStatus status) => !status.IsFinal();
}

/// <summary>
/// Reads and writes <see cref="RecipientStatus"/> as its word. Not JsonStringEnumConverter: that one
/// reads numbers and any letter case, and a state file should say one thing one way.
/// </summary>
internal sealed class RecipientStatusJson : JsonConverter<RecipientStatus>
{
    public override RecipientStatus Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String && RecipientStatusWords.Parse(reader.GetString()) is { } status
            ? status
            : throw new JsonException("a recipient status is one of pending, deferred, delivered, bounced");

    public override void Write(Utf8JsonWriter writer, RecipientStatus value, JsonSerializerOptions options) => writer.WriteStringValue(value.Word());
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
    /// known status (an unknown word fails in <see cref="RecipientStatusJson"/>).
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
            if (r is null || string.IsNullOrEmpty(r.Address) || !Enum.IsDefined(r.Status))
            {
                throw new InvalidDataException("state has a recipient without an address or with an unknown status");
            }
        }
        return state;
    }
}
