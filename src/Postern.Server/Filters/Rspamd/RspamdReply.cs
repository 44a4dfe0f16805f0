using System.Globalization;
using System.Text.Json;

namespace Postern.Server.Filters.Rspamd;

/// <summary>The action rspamd's metric chose (its protocol's <c>action</c> field).</summary>
public enum RspamdAction
{
    NoAction,
    Greylist,
    AddHeader,
    RewriteSubject,
    SoftReject,
    Reject,
}

/// <summary>One symbol rspamd's rules matched, with the score it added.</summary>
public readonly record struct RspamdSymbol(string Name, double Score);

/// <summary>
/// A header field rspamd asks to add (<c>milter.add_headers</c>, or the top-level
/// <c>dkim-signature</c>). <see cref="Order"/> is rspamd's position (its lua_mime.modify_headers):
/// -1, or none given, appends at the end of the header section; N (0 or more) inserts it before the
/// field at 0-based index N, so 0 is the top, as libmilter's smfi_insheader.
/// </summary>
public readonly record struct RspamdHeaderField(string Name, string Value, int Order = RspamdHeaderField.Append)
{
    /// <summary>rspamd's order for "at the end".</summary>
    public const int Append = -1;
}

/// <summary>
/// A header field rspamd asks to remove (<c>milter.remove_headers</c>): <see cref="Index"/> 0
/// removes every field of that name, N the Nth (1-based), -N the Nth from the end.
/// </summary>
public readonly record struct RspamdHeaderRemoval(string Name, int Index);

/// <summary>
/// rspamd's reply to <c>/checkv2</c> as a small typed value (rspamd's "protocol" document, "Rspamd
/// HTTP reply"): the action, score and threshold, the symbols, its SMTP text, the new subject and
/// the header changes. Parsed from bytes with <see cref="JsonDocument"/>: no reflection, unknown
/// fields ignored, every field optional except <c>action</c>.
/// </summary>
public sealed record RspamdReply(
    RspamdAction Action,
    double Score,
    double RequiredScore,
    IReadOnlyList<RspamdSymbol> Symbols,
    string? SmtpMessage,
    string? Subject,
    IReadOnlyList<RspamdHeaderField> AddHeaders,
    IReadOnlyList<RspamdHeaderRemoval> RemoveHeaders,
    bool IsSkipped)
{
    /// <summary>At most this many symbols are kept from one reply (rspamd's run into the hundreds only when misconfigured).</summary>
    public const int MaxSymbols = 500;

    /// <summary>At most this many header changes are kept from one reply.</summary>
    public const int MaxHeaderChanges = 100;

    /// <summary>
    /// Parses a reply; throws <see cref="FormatException"/> naming what is wrong when it is not
    /// JSON, not an object, has no known action, or a field of the wrong type.
    /// </summary>
    public static RspamdReply Parse(ReadOnlySpan<byte> json)
    {
        JsonDocument document;
        try
        {
            // The bytes are already bounded by the caller; the depth bounds the parser's stack.
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 16, CommentHandling = JsonCommentHandling.Disallow });
            document = JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException e)
        {
            throw new FormatException($"not JSON: {e.Message}");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException($"a {root.ValueKind} where an object was expected");
            }
            if (root.TryGetProperty("error", out var error) && !root.TryGetProperty("action", out _))
            {
                throw new FormatException($"rspamd reports an error: {Text(error)}");
            }
            var action = ParseAction(String(root, "action") ?? throw new FormatException("no action"));
            var symbols = new List<RspamdSymbol>();
            if (Member(root, "symbols", JsonValueKind.Object) is { } symbolsElement)
            {
                foreach (var s in symbolsElement.EnumerateObject())
                {
                    if (symbols.Count == MaxSymbols)
                    {
                        break;
                    }
                    // Each symbol is an object with its name and score; the key is the name too.
                    var score = s.Value.ValueKind == JsonValueKind.Object ? Number(s.Value, "score") : 0;
                    symbols.Add(new RspamdSymbol(s.Name, score));
                }
            }
            string? smtpMessage = null;
            if (Member(root, "messages", JsonValueKind.Object) is { } messages)
            {
                smtpMessage = String(messages, "smtp_message");
            }
            var add = new List<RspamdHeaderField>();
            var remove = new List<RspamdHeaderRemoval>();
            if (Member(root, "milter", JsonValueKind.Object) is { } milter)
            {
                if (Member(milter, "add_headers", JsonValueKind.Object) is { } adds)
                {
                    foreach (var h in adds.EnumerateObject())
                    {
                        AddHeaderValues(h.Name, h.Value, add);
                    }
                }
                if (Member(milter, "remove_headers", JsonValueKind.Object) is { } removes)
                {
                    foreach (var h in removes.EnumerateObject())
                    {
                        if (remove.Count < MaxHeaderChanges)
                        {
                            remove.Add(new RspamdHeaderRemoval(h.Name, h.Value.ValueKind == JsonValueKind.Number && h.Value.TryGetInt32(out var n) ? n : 0));
                        }
                    }
                }
            }
            // rspamd puts a signature it made both here and, since 2.x, in milter.add_headers: once is enough.
            if (root.TryGetProperty("dkim-signature", out var dkim) && !add.Any(h => h.Name.Equals("DKIM-Signature", StringComparison.OrdinalIgnoreCase)))
            {
                AddHeaderValues("DKIM-Signature", dkim, add);
            }
            return new RspamdReply(
                action,
                Number(root, "score"),
                Number(root, "required_score"),
                symbols,
                smtpMessage,
                String(root, "subject"),
                add,
                remove,
                root.TryGetProperty("is_skipped", out var skipped) && skipped.ValueKind == JsonValueKind.True);
        }
    }

    /// <summary>rspamd's action names (its <c>rspamd_action_to_str</c>); underscores are accepted for spaces as its configuration allows.</summary>
    public static RspamdAction ParseAction(string name) => name.Replace('_', ' ').ToLowerInvariant() switch
    {
        "no action" => RspamdAction.NoAction,
        "greylist" => RspamdAction.Greylist,
        "add header" => RspamdAction.AddHeader,
        "rewrite subject" => RspamdAction.RewriteSubject,
        "soft reject" => RspamdAction.SoftReject,
        "reject" => RspamdAction.Reject,
        _ => throw new FormatException($"unknown action '{name}'"),
    };

    /// <summary>The action as rspamd writes it, for headers and logs.</summary>
    public static string ActionName(RspamdAction action) => action switch
    {
        RspamdAction.NoAction => "no action",
        RspamdAction.Greylist => "greylist",
        RspamdAction.AddHeader => "add header",
        RspamdAction.RewriteSubject => "rewrite subject",
        RspamdAction.SoftReject => "soft reject",
        _ => "reject",
    };

    // A header's value is a string, an object { "value": ..., "order": N }, or an array of either.
    private static void AddHeaderValues(string name, JsonElement value, List<RspamdHeaderField> into)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                Add(name, value.GetString()!, RspamdHeaderField.Append, into);
                break;
            case JsonValueKind.Object:
                if (String(value, "value") is { } v)
                {
                    var order = value.TryGetProperty("order", out var o) && o.ValueKind == JsonValueKind.Number && o.TryGetInt32(out var n) && n >= 0 ? n : RspamdHeaderField.Append;
                    Add(name, v, order, into);
                }
                break;
            case JsonValueKind.Array:
                foreach (var item in value.EnumerateArray())
                {
                    if (item.ValueKind is JsonValueKind.String or JsonValueKind.Object)
                    {
                        AddHeaderValues(name, item, into);
                    }
                }
                break;
        }
    }

    private static void Add(string name, string value, int order, List<RspamdHeaderField> into)
    {
        if (into.Count < MaxHeaderChanges)
        {
            into.Add(new RspamdHeaderField(name, value, order));
        }
    }

    private static JsonElement? Member(JsonElement parent, string name, JsonValueKind kind) =>
        parent.TryGetProperty(name, out var e) && e.ValueKind == kind ? e : null;

    private static string? String(JsonElement parent, string name)
    {
        if (!parent.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return e.ValueKind == JsonValueKind.String ? e.GetString() : throw new FormatException($"'{name}' is a {e.ValueKind}, not a string");
    }

    private static double Number(JsonElement parent, string name)
    {
        if (!parent.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null)
        {
            return 0;
        }
        // rspamd writes numbers as JSON numbers; a string holding one is taken too.
        if (e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out var d) && double.IsFinite(d))
        {
            return d;
        }
        if (e.ValueKind == JsonValueKind.String && double.TryParse(e.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out d) && double.IsFinite(d))
        {
            return d;
        }
        throw new FormatException($"'{name}' is not a number");
    }

    private static string Text(JsonElement e) => e.ValueKind == JsonValueKind.String ? e.GetString()! : e.GetRawText();
}
