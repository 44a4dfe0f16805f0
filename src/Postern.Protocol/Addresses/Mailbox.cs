namespace Postern.Protocol.Addresses;

/// <summary>
/// An address as RFC 5321 §4.1.2 defines it: Local-part "@" ( Domain / address-literal ).
/// <see cref="LocalPart"/> is the unquoted form when the quoted one held nothing that needs quotes;
/// otherwise it keeps its quotes, so it can never be mistaken for a plain local part.
/// </summary>
public sealed record Mailbox(string LocalPart, string Domain, bool IsAddressLiteral, bool IsInternational)
{
    /// <summary>Domains compare without case (RFC 5321 §2.4); ASCII lower case is the canonical form.</summary>
    public string DomainKey => Domain.ToLowerInvariant();

    /// <summary>The address as it is written in a path.</summary>
    public string Address => $"{LocalPart}@{Domain}";

    /// <inheritdoc/>
    public override string ToString() => Address;
}

/// <summary>The MAIL FROM path; <see cref="Mailbox"/> is null for the null path &lt;&gt;.</summary>
public sealed record ReversePath(Mailbox? Mailbox)
{
    public static readonly ReversePath Null = new((Mailbox?)null);
    public bool IsNull => Mailbox is null;
    public override string ToString() => Mailbox?.Address ?? "";
}

/// <summary>
/// The RCPT TO path. A source route (RFC 5321 §4.1.1.3, "SHOULD ignore") is dropped by the parser:
/// what is left is checked exactly like any other address, so a route can never open a relay.
/// </summary>
public sealed record ForwardPath(Mailbox Mailbox, bool HadSourceRoute)
{
    public override string ToString() => Mailbox.Address;
}
