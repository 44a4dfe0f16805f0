using Postern.Protocol.Commands;
using Postern.Protocol.Replies;

namespace Postern.Server.Smtp;

/// <summary>Where a session stands in the dialogue.</summary>
public enum SessionState
{
    /// <summary>Greeted, no HELO/EHLO yet (also right after STARTTLS, RFC 3207 §4.2).</summary>
    Connected,
    /// <summary>HELO/EHLO done, no transaction.</summary>
    Ready,
    /// <summary>MAIL accepted.</summary>
    Mail,
    /// <summary>At least one RCPT accepted.</summary>
    Rcpt,
    /// <summary>BDAT chunks are arriving (RFC 3030).</summary>
    Bdat,
}

/// <summary>
/// Command legality in one table (STYLE principle 4): for each verb, the states it is allowed in,
/// the reply when it is not, and whether it may be used before TLS on a listener that requires TLS.
/// Handlers only do their verb's work; they never check sequence themselves.
/// </summary>
public static class CommandTable
{
    public sealed record Rule(SessionState[] AllowedIn, Func<SessionState, SmtpReply> Refusal, bool AllowedBeforeTls);

    private static readonly SessionState[] Any = Enum.GetValues<SessionState>();

    private static readonly Dictionary<Verb, Rule> Rules = new()
    {
        [Verb.Helo] = new(Any, _ => Reply.BadSequence, true),
        [Verb.Ehlo] = new(Any, _ => Reply.BadSequence, true),
        [Verb.StartTls] = new([SessionState.Connected, SessionState.Ready], _ => Reply.BadSequence, true),
        [Verb.Auth] = new([SessionState.Ready], s => s == SessionState.Connected ? Reply.SendHeloFirst : Reply.AuthDuringTransaction, false),
        [Verb.Mail] = new([SessionState.Ready], s => s == SessionState.Connected ? Reply.SendHeloFirst : Reply.NestedMail, false),
        [Verb.Rcpt] = new([SessionState.Mail, SessionState.Rcpt], s => s == SessionState.Bdat ? Reply.BadSequence : Reply.NeedMailFirst, false),
        [Verb.Data] = new([SessionState.Rcpt], s => s switch
        {
            SessionState.Mail => Reply.NeedRcptFirst,
            SessionState.Bdat => Reply.DataAfterBdat,
            _ => Reply.NeedMailFirst,
        }, false),
        [Verb.Bdat] = new([SessionState.Rcpt, SessionState.Bdat], s => s == SessionState.Mail ? Reply.NeedRcptFirst : Reply.NeedMailFirst, false),
        [Verb.Rset] = new(Any, _ => Reply.BadSequence, true),
        [Verb.Noop] = new(Any, _ => Reply.BadSequence, true),
        [Verb.Quit] = new(Any, _ => Reply.BadSequence, true),
        [Verb.Help] = new(Any, _ => Reply.BadSequence, true),
        [Verb.Vrfy] = new(Any, _ => Reply.BadSequence, false),
        [Verb.Expn] = new(Any, _ => Reply.BadSequence, false),
    };

    public static Rule For(Verb verb) => Rules[verb];

    /// <summary>
    /// Commands that move no mail forward (Postfix's smtpd_junk_command_limit counts the same):
    /// a session gets Limits.MaxJunkCommands of them (refused commands count too) between messages.
    /// </summary>
    public static bool IsJunk(Verb verb) => verb is Verb.Noop or Verb.Rset or Verb.Vrfy or Verb.Expn or Verb.Help or Verb.Unknown;

    /// <summary>Null when the verb is allowed now, otherwise the refusal.</summary>
    public static SmtpReply? Check(Verb verb, SessionState state, bool tlsRequiredButMissing)
    {
        var rule = Rules[verb];
        if (tlsRequiredButMissing && !rule.AllowedBeforeTls)
        {
            return verb == Verb.Auth ? Reply.EncryptionRequiredForAuth : Reply.TlsRequired;
        }
        return Array.IndexOf(rule.AllowedIn, state) >= 0 ? null : rule.Refusal(state);
    }
}
