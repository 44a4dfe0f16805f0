using Postern.MailAuth.Srs;
using Postern.Protocol.Addresses;

namespace Postern.Server.Accounts;

/// <summary>What a recipient address is to this server.</summary>
public enum RecipientKind
{
    /// <summary>In a local domain and known: an account, an alias, a plus-address or postmaster.</summary>
    Local,
    /// <summary>In a local domain, unknown: 550 5.1.1.</summary>
    UnknownLocal,
    /// <summary>Another domain: relaying, allowed only to authenticated or trusted clients.</summary>
    Remote,
    /// <summary>An address literal: refused, never relayed.</summary>
    AddressLiteral,
}

/// <summary>
/// The local addresses (SPEC §4): accounts, aliases from the configuration, <c>local+tag</c>, and
/// <c>postmaster@</c> every local domain (RFC 5321 §4.5.1), and, with <paramref name="srs"/>, the SRS
/// addresses Postern itself wrote when forwarding (a bounce coming back), which forward like an alias
/// to the address they were made from. Nothing here splits an address on '%', '!' or a second '@':
/// such forms are just unknown local parts, so they can never relay; an SRS address relays only with
/// a hash made with our secret.
/// </summary>
/// <remarks>The local domains are those of the configuration in force (<paramref name="domains"/>, lower case), read at each lookup: a reload adds or removes one at once.</remarks>
public sealed class AddressBook(Func<IReadOnlySet<string>> domains, AccountStore accounts, Func<IReadOnlyDictionary<string, List<string>>> aliases,
    SrsRewriter? srs = null)
{
    private const int MaxExpansionDepth = 8;

    /// <summary>A fixed set of local domains.</summary>
    public AddressBook(IReadOnlyCollection<string> domains, AccountStore accounts, Func<IReadOnlyDictionary<string, List<string>>> aliases, SrsRewriter? srs = null)
        : this(Fixed(domains), accounts, aliases, srs)
    {
    }

    private static Func<IReadOnlySet<string>> Fixed(IReadOnlyCollection<string> domains)
    {
        IReadOnlySet<string> set = new HashSet<string>(domains.Select(d => d.ToLowerInvariant()), StringComparer.Ordinal);
        return () => set;
    }

    public AccountStore Accounts => accounts;

    /// <summary>The same book with a fixed set of local domains (a session's, for one transaction).</summary>
    public AddressBook WithDomains(IReadOnlySet<string> local) => new(() => local, accounts, aliases, srs);

    public bool IsLocalDomain(string domain) => domains().Contains(domain.ToLowerInvariant());

    public RecipientKind Classify(Mailbox m)
    {
        if (m.IsAddressLiteral)
        {
            return RecipientKind.AddressLiteral;
        }
        if (!IsLocalDomain(m.Domain))
        {
            return RecipientKind.Remote;
        }
        return ResolveLocal(m.LocalPart, m.DomainKey) is null ? RecipientKind.UnknownLocal : RecipientKind.Local;
    }

    /// <summary>
    /// The canonical local address a local part resolves to (an alias key, an account, or postmaster),
    /// or null when unknown. Lookups are case-insensitive.
    /// </summary>
    public string? ResolveLocal(string localPart, string domain)
    {
        var local = localPart.ToLowerInvariant();
        var address = $"{local}@{domain}";
        if (IsKnown(address))
        {
            return address;
        }
        // Plus-addressing: local+tag@domain is local@domain.
        var plus = local.IndexOf('+');
        if (plus > 0 && !local.StartsWith('"'))
        {
            var baseAddress = $"{local[..plus]}@{domain}";
            if (IsKnown(baseAddress))
            {
                return baseAddress;
            }
            local = local[..plus];
        }
        // RFC 5321 §4.5.1: postmaster (case-insensitive) at every local domain.
        if (local == "postmaster")
        {
            return $"postmaster@{domain}";
        }
        // A bounce to an address we rewrote with SRS: kept as written (the original's case matters).
        return SrsTarget(localPart) is not null ? $"{localPart}@{domain}" : null;
    }

    /// <summary>Where a genuine, unexpired SRS local part of ours leads; null for anything else.</summary>
    private string? SrsTarget(string localPart) =>
        srs is not null && SrsRewriter.LooksLikeSrs(localPart) && srs.Reverse(localPart) is SrsReverse.Valid v ? v.Address : null;

    private bool IsKnown(string address) => aliases().ContainsKey(address) || accounts.Exists(address);

    /// <summary>
    /// Expands a canonical local address to its final targets: accounts (local=true) and remote
    /// addresses (local=false). Postmaster with no alias or account gets a mailbox of its own.
    /// </summary>
    public List<(string Address, bool Local)> Expand(string address)
    {
        var result = new List<(string, bool)>();
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        Walk(address, 0);
        return result;

        void Walk(string a, int depth)
        {
            if (!seen.Add(a))
            {
                return;
            }
            var at = a.LastIndexOf('@');
            var domain = at < 0 ? "" : a[(at + 1)..].ToLowerInvariant();
            if (!IsLocalDomain(domain))
            {
                result.Add((a, false));
                return;
            }
            var canonical = ResolveLocal(a[..at], domain);
            if (canonical is null)
            {
                return;
            }
            if (depth < MaxExpansionDepth && aliases().TryGetValue(canonical, out var targets))
            {
                foreach (var t in targets)
                {
                    Walk(t, depth + 1);
                }
                return;
            }
            if (!IsKnown(canonical) && SrsTarget(canonical[..canonical.LastIndexOf('@')]) is { } back)
            {
                if (depth < MaxExpansionDepth)
                {
                    Walk(back, depth + 1);
                }
                return;
            }
            result.Add((canonical, true));
        }
    }

    /// <summary>
    /// SPEC §4: a user may send as their own address, a plus-address of it, or an alias that
    /// points to them.
    /// </summary>
    public bool Owns(string user, Mailbox from)
    {
        if (from.IsAddressLiteral || !IsLocalDomain(from.Domain))
        {
            return false;
        }
        var canonical = ResolveLocal(from.LocalPart, from.DomainKey);
        if (canonical is null)
        {
            return false;
        }
        if (canonical.Equals(user, StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }
        return aliases().ContainsKey(canonical)
               && Expand(canonical).Any(t => t.Local && t.Address.Equals(user, StringComparison.OrdinalIgnoreCase));
    }
}
