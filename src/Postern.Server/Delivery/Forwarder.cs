using MimeKit;
using Postern.MailAuth.Arc;
using Postern.MailAuth.Srs;

namespace Postern.Server.Delivery;

/// <summary>
/// What changes when Postern sends on a message for an alias (a local address forwarding to a remote
/// one), so that it still passes at the next hop: the envelope sender is rewritten with SRS into the
/// alias's own domain (whose SPF names this server), and the message gets an ARC set recording what
/// Postern found on arrival (RFC 8617), since SPF for the original sender can no longer pass.
/// </summary>
/// <param name="srs">The rewriter (MailAuth.Srs); null: senders go unchanged.</param>
/// <param name="sealer">The ARC sealer (MailAuth.ArcSeal); null: no ARC set.</param>
/// <param name="authservId">The authserv-id of Postern's Authentication-Results (its Hostname).</param>
/// <param name="isLocalDomain">A sender of a local domain is already covered by its SPF.</param>
public sealed class Forwarder(SrsRewriter? srs, ArcSealer? sealer, string authservId, Func<string, bool> isLocalDomain)
{
    /// <summary>
    /// The MAIL FROM for a copy forwarded by <paramref name="domain"/>: the null sender stays null
    /// (bounces are never rewritten), a local sender stays, any other becomes <c>SRS0=...@domain</c>.
    /// </summary>
    public string EnvelopeSender(string from, string domain)
    {
        if (srs is null || from.Length == 0)
        {
            return from;
        }
        var at = from.LastIndexOf('@');
        if (at < 0 || isLocalDomain(from[(at + 1)..]))
        {
            return from;
        }
        return srs.Forward(from, domain) ?? from;
    }

    /// <summary>Adds an ARC set as <paramref name="domain"/>'s forwarder, when it has a DKIM key; true when it did.</summary>
    public Task<bool> SealAsync(MimeMessage message, string domain, string? authenticationResults, CancellationToken cancellationToken) =>
        sealer is null ? Task.FromResult(false) : sealer.SealAsync(message, domain, authservId, authenticationResults, cancellationToken);
}
