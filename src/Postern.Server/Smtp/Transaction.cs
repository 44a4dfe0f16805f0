using Postern.Protocol.Commands;
using Postern.Protocol.Parsing;
using Postern.Server.Queue;

namespace Postern.Server.Smtp;

/// <summary>One mail transaction: MAIL, the accepted RCPTs, and the message being written.</summary>
internal sealed class Transaction(MailCommand mail, QueueId id)
{
    public MailCommand Mail { get; } = mail;
    public QueueId Id { get; } = id;
    public List<EnvelopeRecipient> Recipients { get; } = [];
    /// <summary>The accepted recipients as compared for duplicates (see SmtpSession.RecipientKey).</summary>
    public HashSet<string> RecipientKeys { get; } = new(StringComparer.Ordinal);
    public SpoolWriter? Writer { get; set; }
    public Envelope? Envelope { get; set; }
    public BdatReader? Bdat { get; set; }
    public HeaderFixup? Fixup { get; set; }
    /// <summary>The receiving side's checks (SPF at MAIL), for the Authentication-Results field.</summary>
    public List<Postern.MailAuth.AuthenticationResults.MethodResult> AuthResults { get; } = [];
    /// <summary>SPF was checked at MAIL: the message gets DKIM, DMARC and an Authentication-Results field at its end.</summary>
    public Postern.MailAuth.Spf.SpfOutcome? Spf { get; set; }
    /// <summary>Removes forged Authentication-Results fields with our authserv-id as the message streams in.</summary>
    public Postern.Protocol.Parsing.HeaderFieldFilter? Filter { get; set; }
    /// <summary>Where content is written: the header guard, in front of the fixup (submission) or the spool file.</summary>
    public Postern.Protocol.Parsing.HeaderGuard? Headers { get; set; }
    /// <summary>Counts MIME parts and nesting as the data streams (Limits.MaxMimeParts, MaxMimeDepth).</summary>
    public Postern.Protocol.Parsing.MimeStructureGuard? Mime { get; set; }
    /// <summary>When the first DATA or BDAT began, for the minimum data rate.</summary>
    public DateTimeOffset DataStarted { get; set; }
    /// <summary>Set when DMARC quarantined the message (it goes to Junk): the DMARC result, for the quarantined line after the commit.</summary>
    public string? Quarantine { get; set; }

    public void Abort()
    {
        Writer?.Abort();
        Writer = null;
    }
}
