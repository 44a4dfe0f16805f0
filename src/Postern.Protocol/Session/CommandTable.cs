using Postern.Protocol.Commands;
using Postern.Protocol.Replies;

namespace Postern.Protocol.Session;

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
/// Command legality in one table (STYLE principle 4, after Postfix's smtpd_cmd_table): for each
/// verb, the states it is allowed in, the state a success leads to, the reply when it is not
/// allowed, whether it may be used before TLS on a listener that requires TLS, whether it is junk
/// (moves no mail forward: counted against Limits.MaxJunkCommands), and whether it must be the last
/// of a pipelined group (RFC 2920 §3.1: EHLO, DATA, VRFY, EXPN, QUIT and NOOP; STARTTLS and AUTH
/// too, because what follows them is read under new conditions). Handlers only do their verb's work.
/// </summary>
public static class CommandTable
{
    /// <summary>One verb's row. <paramref name="Next"/> null: a success leaves the state as it is.</summary>
    public sealed record Rule(SessionState[] AllowedIn, SessionState? Next, Func<SessionState, SmtpReply> Refusal, bool AllowedBeforeTls, bool Junk, bool LastInGroup);

    private static readonly SessionState[] Any = Enum.GetValues<SessionState>();

    private static readonly Dictionary<Verb, Rule> Rules = new()
    {
        [Verb.Helo] = new(Any, SessionState.Ready, _ => Reply.BadSequence, true, false, true),
        [Verb.Ehlo] = new(Any, SessionState.Ready, _ => Reply.BadSequence, true, false, true),
        [Verb.StartTls] = new([SessionState.Connected, SessionState.Ready], SessionState.Connected, _ => Reply.BadSequence, true, false, true),
        [Verb.Auth] = new([SessionState.Ready], null, s => s == SessionState.Connected ? Reply.SendHeloFirst : Reply.AuthDuringTransaction, false, false, true),
        [Verb.Mail] = new([SessionState.Ready], SessionState.Mail, s => s == SessionState.Connected ? Reply.SendHeloFirst : Reply.NestedMail, false, false, false),
        [Verb.Rcpt] = new([SessionState.Mail, SessionState.Rcpt], SessionState.Rcpt, s => s == SessionState.Bdat ? Reply.BadSequence : Reply.NeedMailFirst, false, false, false),
        [Verb.Data] = new([SessionState.Rcpt], SessionState.Ready, s => s switch
        {
            SessionState.Mail => Reply.NeedRcptFirst,
            SessionState.Bdat => Reply.DataAfterBdat,
            _ => Reply.NeedMailFirst,
        }, false, false, true),
        // BDAT LAST leads to Ready instead (see SmtpEngine.Succeeded); chunks may be pipelined (RFC 3030 §4.2).
        [Verb.Bdat] = new([SessionState.Rcpt, SessionState.Bdat], SessionState.Bdat, s => s == SessionState.Mail ? Reply.NeedRcptFirst : Reply.NeedMailFirst, false, false, false),
        // RSET leaves Connected as it is (RFC 5321 §4.1.1.5 clears the transaction, not the greeting).
        [Verb.Rset] = new(Any, null, _ => Reply.BadSequence, true, true, false),
        [Verb.Noop] = new(Any, null, _ => Reply.BadSequence, true, true, true),
        [Verb.Quit] = new(Any, null, _ => Reply.BadSequence, true, false, true),
        [Verb.Help] = new(Any, null, _ => Reply.BadSequence, true, true, false),
        [Verb.Vrfy] = new(Any, null, _ => Reply.BadSequence, false, true, true),
        [Verb.Expn] = new(Any, null, _ => Reply.BadSequence, false, true, true),
    };

    public static Rule For(Verb verb) => Rules[verb];

    /// <summary>Commands that move no mail forward (Postfix's smtpd_junk_command_limit counts the same); an unknown verb is junk too.</summary>
    public static bool IsJunk(Verb verb) => verb == Verb.Unknown || Rules[verb].Junk;

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
