using Postern.Protocol.Replies;

namespace Postern.Server.Filters.Milter;

/// <summary>What a milter decided at one stage.</summary>
public enum MilterVerdictKind
{
    /// <summary>Go on (SMFIR_CONTINUE, or a stage the milter does not take part in).</summary>
    Continue,

    /// <summary>
    /// Accept without further filtering (SMFIR_ACCEPT): at connect or HELO for the whole session,
    /// at a later stage for this message. The milter is not asked again until then.
    /// </summary>
    Accept,

    /// <summary>Refuse permanently (SMFIR_REJECT, or SMFIR_REPLYCODE with a 5xx code): at RCPT this recipient only.</summary>
    Reject,

    /// <summary>Refuse for now (SMFIR_TEMPFAIL, or SMFIR_REPLYCODE with a 4xx code): at RCPT this recipient only.</summary>
    TempFail,

    /// <summary>Accept the message and drop it silently (SMFIR_DISCARD); at RCPT it means the whole message.</summary>
    Discard,

    /// <summary>
    /// The milter could not be reached, did not answer in time, or broke the protocol. The caller
    /// applies the milter's default action (<see cref="MilterSession.DefaultAction"/>); the milter
    /// is not asked again in this session.
    /// </summary>
    Unavailable,
}

/// <summary>
/// One stage's outcome. <see cref="Reply"/> is the SMTP reply for Reject and TempFail (the milter's
/// own through SMFIR_REPLYCODE, else 550 5.7.1 or 451 4.7.1); <see cref="Detail"/> says why a
/// milter is unavailable, for the log.
/// </summary>
public sealed record MilterVerdict(MilterVerdictKind Kind, SmtpReply? Reply = null, string? Detail = null)
{
    /// <summary>libmilter's SMFIR_REJECT without a reply of its own: Sendmail's and Postfix's words.</summary>
    public static readonly SmtpReply DefaultReject = new(550, "5.7.1", "Command rejected");

    /// <summary>SMFIR_TEMPFAIL without a reply of its own.</summary>
    public static readonly SmtpReply DefaultTempFail = new(451, "4.7.1", "Service unavailable - try again later");

    public static readonly MilterVerdict Continue = new(MilterVerdictKind.Continue);
    public static readonly MilterVerdict Accept = new(MilterVerdictKind.Accept);
    public static readonly MilterVerdict Discard = new(MilterVerdictKind.Discard);

    public static MilterVerdict Unavailable(string detail) => new(MilterVerdictKind.Unavailable, null, detail);

    /// <summary>True when the verdict ends the message (or at RCPT the recipient) here: reject, tempfail, discard.</summary>
    public bool IsRefusal => Kind is MilterVerdictKind.Reject or MilterVerdictKind.TempFail;
}

/// <summary>
/// A change a milter asked for at end of message (SMFIR_ADDHEADER … SMFIR_QUARANTINE), in the
/// order it sent them; the session applies them to the message before it is queued. Header names
/// and values are as the milter sent them (values without the space after the colon unless the
/// milter negotiated SMFIP_HDR_LEADSPC; folded lines joined by LF, as libmilter expects).
/// </summary>
public abstract record MilterModification
{
    private MilterModification()
    {
    }

    /// <summary>Append a header field at the end of the header section (SMFIR_ADDHEADER).</summary>
    public sealed record AddHeader(string Name, string Value) : MilterModification;

    /// <summary>
    /// Insert a header field before the field at 0-based position <paramref name="Index"/> of the
    /// whole header section; an index past the end appends (SMFIR_INSHEADER, libmilter's
    /// smfi_insheader).
    /// </summary>
    public sealed record InsertHeader(int Index, string Name, string Value) : MilterModification;

    /// <summary>
    /// Replace the value of the <paramref name="Index"/>-th (1-based) field named <paramref name="Name"/>
    /// (SMFIR_CHGHEADER); when there are fewer, append it.
    /// </summary>
    public sealed record ChangeHeader(int Index, string Name, string Value) : MilterModification;

    /// <summary>Remove the <paramref name="Index"/>-th (1-based) field named <paramref name="Name"/> (SMFIR_CHGHEADER with an empty value).</summary>
    public sealed record DeleteHeader(int Index, string Name) : MilterModification;

    /// <summary>Replace the envelope sender (SMFIR_CHGFROM), with its ESMTP parameters if any.</summary>
    public sealed record ChangeSender(string Address, string? Parameters) : MilterModification;

    /// <summary>Add an envelope recipient (SMFIR_ADDRCPT, or SMFIR_ADDRCPT_PAR with parameters).</summary>
    public sealed record AddRecipient(string Address, string? Parameters) : MilterModification;

    /// <summary>Remove an envelope recipient (SMFIR_DELRCPT); the address as the milter wrote it, often in angle brackets.</summary>
    public sealed record DeleteRecipient(string Address) : MilterModification;

    /// <summary>
    /// The body was replaced (SMFIR_REPLBODY): the new body is in the sink the caller gave, <paramref name="Length"/>
    /// octets, line endings as the milter sent them (the caller normalizes to CRLF).
    /// </summary>
    public sealed record ReplaceBody(long Length) : MilterModification;

    /// <summary>Hold the message (SMFIR_QUARANTINE) with the milter's reason.</summary>
    public sealed record Quarantine(string Reason) : MilterModification;
}

/// <summary>The outcome of the message stages: the verdict at end of message and the changes asked for.</summary>
public sealed record MilterMessageResult(MilterVerdict Verdict, IReadOnlyList<MilterModification> Modifications)
{
    /// <summary>Whether the body in the caller's sink replaces the message body.</summary>
    public bool BodyReplaced => Modifications.Any(m => m is MilterModification.ReplaceBody);
}
