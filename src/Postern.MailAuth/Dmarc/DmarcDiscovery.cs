namespace Postern.MailAuth.Dmarc;

/// <summary>How policy discovery (RFC 7489 §6.6.3) ended.</summary>
public enum DmarcRecordStatus
{
    /// <summary>One usable record: <see cref="DmarcDiscovery.Record"/>.</summary>
    Found,
    /// <summary>No DMARC record at the Author Domain nor at its Organizational Domain: DMARC does not apply.</summary>
    NotFound,
    /// <summary>More than one DMARC record at the name consulted: §6.6.3 step 5, DMARC does not apply.</summary>
    Multiple,
    /// <summary>One record, without a valid p= (or with an invalid sp=) and without a valid rua=: §6.6.3 step 6.2.</summary>
    Invalid,
    /// <summary>A DNS error other than NXDOMAIN: the answer is unknown for now.</summary>
    TempError,
}

/// <summary>The outcome of DMARC policy discovery for one Author Domain.</summary>
/// <param name="Status">How discovery ended.</param>
/// <param name="RecordDomain">The domain whose _dmarc name was consulted last (where the record is, when found).</param>
/// <param name="Record">The record, when <paramref name="Status"/> is Found or Invalid.</param>
/// <param name="AtOrganizationalDomain">True when the record came from the Organizational Domain, not the Author Domain itself.</param>
public sealed record DmarcDiscovery(DmarcRecordStatus Status, string? RecordDomain, DmarcRecord? Record, bool AtOrganizationalDomain);
