using Postern.Protocol.Addresses;
using Postern.Protocol.Replies;

namespace Postern.Protocol.Commands;

/// <summary>The verbs Postern knows; the command table is indexed by these.</summary>
public enum Verb
{
    Helo, Ehlo, Mail, Rcpt, Data, Bdat, Rset, Noop, Quit, Vrfy, Expn, Help, StartTls, Auth,
    /// <summary>Anything else, including HTTP verbs sent to an SMTP port.</summary>
    Unknown,
}

/// <summary>The closed set of commands the parser produces (STYLE principle 1).</summary>
public abstract record SmtpCommand(Verb Verb);

public sealed record HeloCommand(string Domain, bool Extended) : SmtpCommand(Extended ? Verb.Ehlo : Verb.Helo);

/// <summary>RFC 6152 BODY values.</summary>
public enum BodyType { SevenBit, EightBitMime }

/// <summary>RFC 3461 §4.3 RET.</summary>
public enum DsnReturn { Unspecified, Full, Headers }

/// <summary>RFC 3461 §4.1 NOTIFY, as flags; None means the parameter was absent.</summary>
[Flags]
public enum DsnNotify { None = 0, Never = 1, Success = 2, Failure = 4, Delay = 8 }

public sealed record MailCommand(ReversePath From, long? Size, BodyType Body, bool SmtpUtf8, DsnReturn Ret, string? EnvId)
    : SmtpCommand(Verb.Mail);

/// <summary>RCPT TO with its DSN parameters; <see cref="ORcpt"/> is kept as sent (addr-type;xtext).</summary>
public sealed record RcptCommand(ForwardPath To, DsnNotify Notify, string? ORcpt) : SmtpCommand(Verb.Rcpt);

public sealed record BdatCommand(long Size, bool Last) : SmtpCommand(Verb.Bdat);

public sealed record AuthCommand(string Mechanism, string? InitialResponse) : SmtpCommand(Verb.Auth);

/// <summary>Commands with no argument, or whose argument is not used (NOOP, HELP, VRFY, EXPN).</summary>
public sealed record SimpleCommand(Verb Kind) : SmtpCommand(Kind);

/// <summary>A known verb with bad arguments: the reply says why.</summary>
public sealed record InvalidCommand(Verb Kind, SmtpReply Reply) : SmtpCommand(Kind);
