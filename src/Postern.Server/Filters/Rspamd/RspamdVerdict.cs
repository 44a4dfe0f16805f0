using System.Globalization;
using System.Text;
using Postern.Protocol.Replies;
using Postern.Server.Configuration;

namespace Postern.Server.Filters.Rspamd;

/// <summary>What Postern does with a message after asking rspamd.</summary>
public enum RspamdVerdictKind
{
    /// <summary>Accept, with <see cref="RspamdVerdict.AddHeaders"/> and <see cref="RspamdVerdict.RemoveHeaders"/> applied ("no action", "add header").</summary>
    Accept,

    /// <summary>Accept with the Subject replaced by <see cref="RspamdVerdict.NewSubject"/>, and the header changes ("rewrite subject").</summary>
    RewriteSubject,

    /// <summary>Refuse permanently ("reject"): <see cref="RspamdVerdict.Reply"/> is 554 5.7.1.</summary>
    Reject,

    /// <summary>Refuse for now ("soft reject", "greylist"): <see cref="RspamdVerdict.Reply"/> is 451 4.7.1.</summary>
    TempFail,

    /// <summary>
    /// rspamd was not reached, did not answer within Rspamd.Timeout, or answered something that is
    /// not a reply. <see cref="RspamdVerdict.Reply"/> is 451 4.7.1 when Rspamd.FailOpen is false,
    /// null when it is true (accept unscanned); <see cref="RspamdVerdict.Detail"/> says why.
    /// </summary>
    Unavailable,

    /// <summary>Not scanned (rspamd off, a submission listener without Rspamd.CheckSubmission, a message over Rspamd.MaxMessageSize): accept as if rspamd were not there.</summary>
    Skipped,
}

/// <summary>
/// rspamd's decision for one message, ready for the SMTP session: <see cref="Reply"/> non-null
/// means answer it instead of 250 (and queue nothing); otherwise apply <see cref="RemoveHeaders"/>,
/// then <see cref="AddHeaders"/>, then <see cref="NewSubject"/>, and accept. <see cref="Summary"/>
/// is the key=value text for the log line and the queue entry.
/// </summary>
public sealed record RspamdVerdict
{
    /// <summary>When rspamd rejects without text of its own (Haraka's words).</summary>
    public const string DefaultRejectText = "Message refused as spam";

    /// <summary>When rspamd soft-rejects or greylists without text of its own.</summary>
    public const string DefaultTempFailText = "Try again later";

    /// <summary>Fail-closed answer when rspamd is unavailable: the milters' and Postfix's tempfail words.</summary>
    public static readonly SmtpReply UnavailableReply = new(451, "4.7.1", "Service unavailable - try again later");

    /// <summary>The longest X-Spam-Symbols value, so the list never outgrows a header section (RFC 5322 §2.1.1 bounds lines, not fields).</summary>
    public const int MaxSymbolsHeaderLength = 1000;

    /// <summary>The longest header value taken from rspamd (a DKIM-Signature with a 4096-bit key is under 1,000).</summary>
    public const int MaxHeaderValueLength = 16 * 1024;

    /// <summary>The longest SMTP text taken from rspamd: one reply line stays under 512 octets (RFC 5321 §4.5.3.1.5).</summary>
    public const int MaxReplyTextLength = 400;

    public required RspamdVerdictKind Kind { get; init; }

    /// <summary>The reply instead of 250, or null to accept.</summary>
    public SmtpReply? Reply { get; init; }

    /// <summary>Header fields to append (Order -1) or insert before the field at 0-based index Order (0: the top), in this order. Values are folded with CRLF + tab, never a bare CR or LF; write <c>Name: Value CRLF</c>.</summary>
    public IReadOnlyList<RspamdHeaderField> AddHeaders { get; init; } = [];

    /// <summary>Header fields to remove before adding (a sender's forged X-Spam-* among them).</summary>
    public IReadOnlyList<RspamdHeaderRemoval> RemoveHeaders { get; init; } = [];

    /// <summary>The new Subject value for <see cref="RspamdVerdictKind.RewriteSubject"/>.</summary>
    public string? NewSubject { get; init; }

    /// <summary>rspamd's reply as parsed, when there was one.</summary>
    public RspamdReply? Result { get; init; }

    /// <summary>Why rspamd is unavailable or the message was skipped, for the log.</summary>
    public string? Detail { get; init; }

    /// <summary>How long the scan took (zero when skipped).</summary>
    public TimeSpan Elapsed { get; init; }

    /// <summary>True on the first Unavailable after rspamd last answered: log the outage once, as the milters do.</summary>
    public bool OutageStarted { get; init; }

    /// <summary>
    /// The log line's part: <c>rspamd=reject score=15.00 required=15.00 symbols=GTUBE(0.00)</c>, or
    /// <c>rspamd=unavailable detail="..."</c>; symbols bounded as in X-Spam-Symbols.
    /// </summary>
    public string Summary
    {
        get
        {
            var kind = Kind.ToString().ToLowerInvariant();
            if (Result is { } r)
            {
                return string.Create(CultureInfo.InvariantCulture,
                    $"rspamd={kind} action=\"{RspamdReply.ActionName(r.Action)}\" score={r.Score:0.00} required={r.RequiredScore:0.00} symbols={SymbolList(r.Symbols, MaxSymbolsHeaderLength, fold: false)} ms={(long)Elapsed.TotalMilliseconds}");
            }
            return $"rspamd={kind} detail=\"{Detail}\"";
        }
    }

    /// <summary>A message not scanned, for <paramref name="why"/>.</summary>
    public static RspamdVerdict Skipped(string why) => new() { Kind = RspamdVerdictKind.Skipped, Detail = why };

    /// <summary>rspamd not reached or not understood: refused for now unless <paramref name="failOpen"/>.</summary>
    public static RspamdVerdict Unavailable(string why, bool failOpen, TimeSpan elapsed, bool outageStarted) => new()
    {
        Kind = RspamdVerdictKind.Unavailable,
        Reply = failOpen ? null : UnavailableReply,
        Detail = why,
        Elapsed = elapsed,
        OutageStarted = outageStarted,
    };

    /// <summary>
    /// Maps rspamd's action to Postern's verdict (issue 13): reject → 554 5.7.1 with rspamd's text;
    /// soft reject and greylist → 451 4.7.1; rewrite subject → the new subject; add header and no
    /// action → accept; with the X-Spam-* fields <paramref name="headers"/> asks for and rspamd's own changes.
    /// </summary>
    public static RspamdVerdict From(RspamdReply reply, RspamdHeaders headers, TimeSpan elapsed)
    {
        switch (reply.Action)
        {
            case RspamdAction.Reject:
                return new RspamdVerdict
                {
                    Kind = RspamdVerdictKind.Reject,
                    // RFC 5321 §4.2.5: 554 after the final dot refuses the whole message; RFC 3463 5.7.1: delivery not authorized.
                    Reply = new SmtpReply(554, "5.7.1", ReplyText(reply.SmtpMessage, DefaultRejectText)),
                    Result = reply,
                    Elapsed = elapsed,
                };
            case RspamdAction.SoftReject or RspamdAction.Greylist:
                return new RspamdVerdict
                {
                    Kind = RspamdVerdictKind.TempFail,
                    Reply = new SmtpReply(451, "4.7.1", ReplyText(reply.SmtpMessage, DefaultTempFailText)),
                    Result = reply,
                    Elapsed = elapsed,
                };
        }
        var add = new List<RspamdHeaderField>();
        var remove = new List<RspamdHeaderRemoval>();
        foreach (var r in reply.RemoveHeaders)
        {
            if (IsFieldName(r.Name))
            {
                remove.Add(r);
            }
        }
        if (headers != RspamdHeaders.None)
        {
            var spam = reply.Action is RspamdAction.AddHeader or RspamdAction.RewriteSubject
                || (reply.RequiredScore > 0 && reply.Score >= reply.RequiredScore);
            // A sender's own X-Spam-* fields would be read as ours by Sieve rules and mail clients: they go first.
            var ours = new List<RspamdHeaderField>
            {
                new("X-Spam-Status", string.Create(CultureInfo.InvariantCulture, $"{(spam ? "Yes" : "No")}, score={reply.Score:0.00} required={reply.RequiredScore:0.00}")),
                new("X-Spam-Score", reply.Score.ToString("0.00", CultureInfo.InvariantCulture)),
            };
            if (headers == RspamdHeaders.All)
            {
                ours.Add(new("X-Spam-Action", RspamdReply.ActionName(reply.Action)));
                ours.Add(new("X-Spam-Symbols", SymbolList(reply.Symbols, MaxSymbolsHeaderLength, fold: true)));
            }
            // rspamd's milter_headers module can add fields of these names itself: then its own stand.
            ours.RemoveAll(o => reply.AddHeaders.Any(h => h.Name.Equals(o.Name, StringComparison.OrdinalIgnoreCase)));
            remove.AddRange(ours.Select(h => new RspamdHeaderRemoval(h.Name, 0)));
            add.AddRange(ours);
        }
        foreach (var h in reply.AddHeaders)
        {
            if (IsFieldName(h.Name) && h.Value.Length <= MaxHeaderValueLength)
            {
                add.Add(h with { Value = Fold(h.Value) });
            }
        }
        var subject = reply.Action == RspamdAction.RewriteSubject && !string.IsNullOrEmpty(reply.Subject) ? Fold(reply.Subject) : null;
        return new RspamdVerdict
        {
            Kind = subject is null ? RspamdVerdictKind.Accept : RspamdVerdictKind.RewriteSubject,
            AddHeaders = add,
            RemoveHeaders = remove,
            NewSubject = subject,
            Result = reply,
            Elapsed = elapsed,
        };
    }

    /// <summary>
    /// Symbols by weight (largest |score| first, then name), <c>NAME(score)</c> joined by ", ",
    /// cut with ", ..." before <paramref name="max"/> characters; folded at 78 columns for a header.
    /// </summary>
    public static string SymbolList(IReadOnlyList<RspamdSymbol> symbols, int max, bool fold)
    {
        var sb = new StringBuilder();
        var line = "X-Spam-Symbols: ".Length;
        var ordered = symbols.OrderByDescending(s => Math.Abs(s.Score)).ThenBy(s => s.Name, StringComparer.Ordinal).ToList();
        for (var i = 0; i < ordered.Count; i++)
        {
            var item = string.Create(CultureInfo.InvariantCulture, $"{Printable(ordered[i].Name, 100)}({ordered[i].Score:0.00})");
            if (sb.Length + item.Length + 2 + ", ...".Length > max)
            {
                sb.Append(fold && line + ", ...".Length > 78 ? ",\r\n\t..." : ", ...");
                break;
            }
            if (i > 0)
            {
                sb.Append(',');
                line++;
                // RFC 5322 §2.1.1 and §2.2.3: lines SHOULD stay within 78 characters; fold at whitespace.
                if (fold && line + 1 + item.Length > 78)
                {
                    sb.Append("\r\n\t");
                    line = 1;
                }
                else
                {
                    sb.Append(' ');
                    line++;
                }
            }
            sb.Append(item);
            line += item.Length;
        }
        return sb.ToString();
    }

    // RFC 5322 §3.6.8: a field name is printable US-ASCII except colon.
    private static bool IsFieldName(string name) =>
        name.Length is > 0 and <= 100 && name.All(c => c is > ' ' and < '\x7f' and not ':');

    /// <summary>
    /// A header value as rspamd sent it (folded with LF, CRLF or not at all), with every line break
    /// made CRLF followed by whitespace (RFC 5322 §2.2.3), so no bare CR or LF reaches the message
    /// and no line can start a new field; other control characters become spaces.
    /// </summary>
    public static string Fold(string value)
    {
        var sb = new StringBuilder(value.Length + 8);
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c is '\r' or '\n')
            {
                if (c == '\r' && i + 1 < value.Length && value[i + 1] == '\n')
                {
                    i++;
                }
                // Trailing line breaks end the field already, and a run of them is one fold: a line of
                // only whitespace must not be generated (RFC 5322 §3.2.2).
                if (i + 1 >= value.Length)
                {
                    break;
                }
                if (value[i + 1] is '\r' or '\n')
                {
                    continue;
                }
                sb.Append("\r\n");
                if (value[i + 1] is not (' ' or '\t'))
                {
                    sb.Append('\t');
                }
            }
            else
            {
                sb.Append(c is < ' ' and not '\t' or '\x7f' ? ' ' : c);
            }
        }
        return sb.ToString().Trim(' ', '\t');
    }

    // rspamd's text on one line, printable, bounded; its default when it has none.
    private static string ReplyText(string? text, string fallback)
    {
        var t = text is null ? "" : Printable(text, MaxReplyTextLength).Trim();
        return t.Length == 0 ? fallback : t;
    }

    private static string Printable(string s, int max)
    {
        var sb = new StringBuilder(Math.Min(s.Length, max));
        foreach (var c in s)
        {
            if (sb.Length == max)
            {
                break;
            }
            // Replies and symbol names are ASCII (RFC 5321 §4.2: SMTP replies are 7-bit without SMTPUTF8).
            sb.Append(c is >= ' ' and < '\x7f' ? c : c < ' ' ? ' ' : '?');
        }
        return sb.ToString();
    }
}
