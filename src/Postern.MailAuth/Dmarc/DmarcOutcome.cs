using System.Text;

namespace Postern.MailAuth.Dmarc;

/// <summary>
/// The result of SPF, or of one DKIM signature, as DMARC takes it in: the result and the domain it was
/// about. For SPF that is the MAIL FROM domain (RFC 7489 §4.1; for a null reverse-path, the HELO domain
/// RFC 7208 §2.4 checked in its place); for DKIM, the signature's d=.
/// </summary>
public readonly record struct MechanismResult(AuthResult Result, string? Domain);

/// <summary>What one mechanism contributes to DMARC (RFC 7489 §4.2).</summary>
public enum IdentifierAlignment
{
    /// <summary>The mechanism did not pass (or was not run), so there is nothing to align.</summary>
    None,
    /// <summary>It passed, but for a domain that does not align with the Author Domain.</summary>
    NotAligned,
    /// <summary>It passed for an aligned domain: DMARC passes.</summary>
    Aligned,
}

/// <summary>Which tag of the record chose <see cref="DmarcOutcome.RequestedPolicy"/>.</summary>
public enum PolicySource
{
    /// <summary>No usable record: no policy.</summary>
    NotApplicable,
    /// <summary>p=: the record is the Author Domain's own, or a subdomain's record has no sp=.</summary>
    Domain,
    /// <summary>sp=: the record is the Organizational Domain's and the Author Domain is below it.</summary>
    Subdomain,
    /// <summary>np= (RFC 9091): as sp=, for an Author Domain that does not exist in DNS.</summary>
    NonExistentSubdomain,
    /// <summary>RFC 7489 §6.6.3 step 6.1: no valid p= (or a bad sp=), but a valid rua=: treated as p=none.</summary>
    InvalidPolicyAsNone,
}

/// <summary>The DMARC verdict on one message, with everything the session and Authentication-Results need.</summary>
public sealed record DmarcOutcome
{
    /// <summary>RFC 7489 §11.2: none, pass, fail, temperror or permerror.</summary>
    public required AuthResult Result { get; init; }

    /// <summary>The Author Domain evaluated (lower-case A-labels): Authentication-Results' header.from.</summary>
    public string? AuthorDomain { get; init; }

    /// <summary>Why there was no single Author Domain, if so (RFC 7489 §6.6.1).</summary>
    public AuthorProblem AuthorProblem { get; init; }

    /// <summary>How policy discovery ended (TempError also when no lookup was possible).</summary>
    public DmarcRecordStatus RecordStatus { get; init; } = DmarcRecordStatus.NotFound;

    /// <summary>The domain whose _dmarc record was used (or last consulted).</summary>
    public string? RecordDomain { get; init; }

    /// <summary>The policy record, when one was found.</summary>
    public DmarcRecord? Record { get; init; }

    /// <summary>The policy the Domain Owner asks for this Author Domain (p=, sp= or np=), whatever the result.</summary>
    public DmarcPolicy RequestedPolicy { get; init; }

    /// <summary>Which tag <see cref="RequestedPolicy"/> came from.</summary>
    public PolicySource PolicySource { get; init; }

    /// <summary>
    /// What to do with the message (the aggregate report's "disposition"): None unless DMARC failed;
    /// on failure the requested policy, one step milder when pct= left this message out (RFC 7489
    /// §6.6.4: reject becomes quarantine, quarantine becomes none). Never Reject or Quarantine for
    /// temperror: the session decides whether to defer then (RFC 7489 §6.6.3 leaves it to the receiver).
    /// </summary>
    public DmarcPolicy Disposition { get; init; }

    /// <summary>True when pct= sampling left this failing message out of the policy.</summary>
    public bool SampledOut { get; init; }

    /// <summary>SPF's contribution.</summary>
    public IdentifierAlignment Spf { get; init; }

    /// <summary>DKIM's contribution: Aligned when any passing signature's d= aligns.</summary>
    public IdentifierAlignment Dkim { get; init; }

    /// <summary>The d= of the first aligned passing DKIM signature, when there is one.</summary>
    public string? AlignedDkimDomain { get; init; }

    /// <summary>A short explanation in plain words, fit for an Authentication-Results comment (no parentheses).</summary>
    public string Comment { get; init; } = "";

    /// <summary>
    /// The dmarc resinfo of an Authentication-Results field (RFC 8601 §2.2, RFC 7489 §11.2), for example
    /// <c>dmarc=fail (p=reject dis=reject) header.from=example.com</c>.
    /// </summary>
    public string ToAuthenticationResults()
    {
        var text = new StringBuilder("dmarc=").Append(ResultWord(Result));
        if (Comment.Length > 0)
        {
            text.Append(" (").Append(Comment).Append(')');
        }
        if (AuthorDomain is not null)
        {
            text.Append(" header.from=").Append(AuthorDomain);
        }
        return text.ToString();
    }

    internal static string ResultWord(AuthResult result) => result switch
    {
        AuthResult.Pass => "pass",
        AuthResult.Fail => "fail",
        AuthResult.TempError => "temperror",
        AuthResult.PermError => "permerror",
        _ => "none",
    };

    internal static string PolicyWord(DmarcPolicy policy) => policy switch
    {
        DmarcPolicy.Reject => "reject",
        DmarcPolicy.Quarantine => "quarantine",
        _ => "none",
    };
}
