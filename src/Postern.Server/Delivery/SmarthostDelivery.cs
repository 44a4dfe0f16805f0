using MailKit.Security;
using Postern.Server.Configuration;
using Postern.Server.Queue;

namespace Postern.Server.Delivery;

/// <summary>
/// Relay.Smarthost: every remote recipient goes to one relay host (the provider's submission server)
/// instead of the recipient's MX, for networks that block outbound port 25. TLS is required
/// (STARTTLS on 587 or implicit TLS on 465, RFC 8314) because the password crosses the network;
/// AUTH with Username and the password read from PasswordFile at each new connection, so a changed
/// password needs no restart. Trouble at the smarthost (DNS, connection, TLS, refused credentials)
/// defers with a reason that names the setting to fix; only a 5xx to a recipient or to the message
/// bounces. The password is never logged.
/// </summary>
public sealed class SmarthostDelivery(SmarthostOptions options, string passwordFile, MxResolver resolver, SmtpDeliveryClient client) : IRemoteDelivery
{

    public string Transport => "smarthost";

    /// <summary>All remote mail shares the smarthost's connection limit.</summary>
    public string Destination(string domain) => $"smarthost:{options.Host}";

    public async Task<IReadOnlyList<(string Recipient, DeliveryOutcome Outcome)>> DeliverAsync(
        SpooledMessage message, string domain, IReadOnlyList<string> recipients, Forwarding? forwarding = null, CancellationToken cancellationToken = default)
    {
        List<(string, DeliveryOutcome)> All(DeliveryOutcome o) => recipients.Select(r => (r, o)).ToList();
        var resolution = await resolver.ResolveHostAsync(options.Host, cancellationToken).ConfigureAwait(false);
        if (resolution is not MxResolution.Hosts hosts)
        {
            // Even "no such host" defers: it is our configuration, not the recipient, that is wrong.
            var why = resolution switch { MxResolution.Temporary t => t.Reason, MxResolution.NoSuchDomain n => n.Reason, _ => "no address" };
            return All(new DeliveryOutcome.Deferred($"smarthost {options.Host} cannot be resolved ({why}): check Relay.Smarthost.Host and Dns.Servers"));
        }
        Func<string>? password = null;
        if (options.Username is not null)
        {
            try
            {
                // One line; the newline an editor or `echo` adds is not part of the password.
                var secret = File.ReadAllText(passwordFile).TrimEnd('\r', '\n');
                password = () => secret;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return All(new DeliveryOutcome.Deferred($"cannot read Relay.Smarthost.PasswordFile {passwordFile}: {e.Message}"));
            }
        }
        var security = options.Tls == "implicit" ? SecureSocketOptions.SslOnConnect : SecureSocketOptions.StartTls;
        IReadOnlyList<(string Recipient, DeliveryOutcome Outcome)> results = All(new DeliveryOutcome.Deferred($"smarthost {options.Host} has no address"));
        foreach (var address in hosts.List[0].Addresses)
        {
            var route = new SmtpRoute(options.Host, address, options.Port, security, options.Username, password, options.VerifyCertificate);
            results = await client.DeliverAsync(message, recipients, route, forwarding, cancellationToken).ConfigureAwait(false);
            // Another address of the same host only helps when this one could not be reached.
            if (results.Any(r => r.Outcome is not DeliveryOutcome.Deferred) || results.All(r => r.Outcome is DeliveryOutcome.Deferred d && d.Reason.Contains("credentials", StringComparison.Ordinal)))
            {
                break;
            }
        }
        return results;
    }
}
