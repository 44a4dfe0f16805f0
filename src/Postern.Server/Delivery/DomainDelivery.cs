using Postern.Server.Queue;

namespace Postern.Server.Delivery;

/// <summary>
/// Delivers one message to the recipients of one destination domain: resolves the MX hosts and tries
/// them in order (RFC 5321 §5.1), every address of each, moving on after a connection failure or a
/// temporary refusal of the whole transaction, and stopping at the first server that gives a
/// definite answer for each recipient. DNS trouble defers; a null MX bounces with 556 5.1.10.
/// </summary>
public sealed class DomainDelivery(MxResolver mx, SmtpDeliveryClient client, int remotePort) : IRemoteDelivery
{
    public string Transport => "smtp";

    public string Destination(string domain) => domain;

    public async Task<IReadOnlyList<(string Recipient, DeliveryOutcome Outcome)>> DeliverAsync(
        SpooledMessage message, string domain, IReadOnlyList<string> recipients, Forwarding? forwarding = null, CancellationToken cancellationToken = default)
    {
        List<(string, DeliveryOutcome)> All(DeliveryOutcome o) => recipients.Select(r => (r, o)).ToList();
        var resolution = await mx.ResolveAsync(domain, cancellationToken).ConfigureAwait(false);
        switch (resolution)
        {
            case MxResolution.NullMx:
                return All(new DeliveryOutcome.Bounced($"556 5.1.10 Recipient address has null MX: {domain} accepts no mail (RFC 7505)"));
            case MxResolution.NoSuchDomain n:
                return All(new DeliveryOutcome.Bounced($"550 5.1.2 {n.Reason}"));
            case MxResolution.Temporary t:
                return All(new DeliveryOutcome.Deferred($"DNS: {t.Reason}"));
        }
        var hosts = ((MxResolution.Hosts)resolution).List;
        var pending = recipients.ToList();
        var outcomes = new Dictionary<string, DeliveryOutcome>(StringComparer.OrdinalIgnoreCase);
        var attempts = new List<string>();
        foreach (var host in hosts)
        {
            foreach (var address in host.Addresses)
            {
                var results = await client.DeliverAsync(message, pending, new SmtpRoute(host.Name, address, remotePort), forwarding, cancellationToken).ConfigureAwait(false);
                foreach (var (rcpt, outcome) in results)
                {
                    outcomes[rcpt] = outcome;
                }
                attempts.Add($"{host.Name}[{address}]");
                // Whoever got a definite answer (delivered or bounced) is done; the rest try the next host.
                pending = results.Where(r => r.Outcome is DeliveryOutcome.Deferred).Select(r => r.Recipient).ToList();
                if (pending.Count == 0)
                {
                    return recipients.Select(r => (r, outcomes[r])).ToList();
                }
            }
        }
        // Every host tried: the last temporary answer stands, naming the hosts tried.
        return recipients.Select(r => (r, outcomes[r] is DeliveryOutcome.Deferred d
            ? d with { Reason = $"{d.Reason} (tried {string.Join(", ", attempts)})" }
            : outcomes[r])).ToList();
    }
}
