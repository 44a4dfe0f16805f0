using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Postern.Invocation;
using Postern.MailAuth.Dns;

namespace Postern.Diagnostics;

/// <summary>
/// `postern diag self [--ip IP,...] [--probe HOST[:PORT]]`: this server's own setup, from its
/// configuration. Its name resolves and its addresses' PTR names point back; for each of Domains,
/// SPF covers the sending address, each DKIM key in DATA/dkim is published as it is, DMARC is there;
/// outbound port 25 reaches the world (or the smarthost answers); the certificate is valid and not
/// about to expire; every listener accepts connections; the queue is not piling up.
/// </summary>
public sealed class SelfCheck : IDiagVerb
{
    /// <summary>Where outbound port 25 is tried when --probe is not given: a receiving server that is always up.</summary>
    public const string DefaultProbe = "gmail-smtp-in.l.google.com:25";

    public string Name => "self";

    public string Usage => "diag self [--ip IP,...] [--probe HOST[:PORT]]";

    public string Summary => "this server's own setup: names, SPF, DKIM, DMARC, port 25 out, certificate, listeners, queue";

    public IReadOnlyList<string> Options => ["--ip", "--probe"];

    public string Target(Arguments args)
    {
        if (args.Positional.Count != 0)
        {
            throw new UsageException($"{Usage}: no other arguments (the configuration says what to check)");
        }
        SendingAddresses.Given(args);
        if (args.Value("--probe") is { } probe && SelfServerChecks.ParseHostPort(probe, 25) is null)
        {
            throw new UsageException($"--probe {probe}: HOST or HOST:PORT");
        }
        return "this server";
    }

    public async Task RunAsync(DiagContext ctx, Arguments args, CancellationToken cancellationToken)
    {
        if (!ctx.HasConfiguration)
        {
            ctx.Add(new DiagStep("config", "this server's configuration", DiagStatus.Fail, "--config FILE, then ./postern.json, then /etc/postern/postern.json",
                "no configuration found", "no_configuration",
                "diag self checks this server's own setup (its names, domains, keys, listeners and queue), which only its configuration knows",
                "run it where the server's postern.json is, or give it: postern diag self --config /etc/postern/postern.json (to check another server, use diag dns DOMAIN and diag port HOST)"));
            return;
        }
        var o = ctx.Options;
        var ips = Sending(ctx, args);
        var hostAddresses = await HostnameAsync(ctx, o.Hostname, ips, cancellationToken);
        foreach (var ip in ips.Concat(hostAddresses).Distinct())
        {
            var role = ips.Contains(ip) ? (hostAddresses.Contains(ip) ? $"sending address, address of {o.Hostname}" : "sending address") : $"address of {o.Hostname}";
            await DnsRecordChecks.PtrAsync(ctx, ip, role, DiagStatus.Fail, o.Hostname, cancellationToken);
        }

        var keys = OwnKeys.Load(ctx, "");
        foreach (var configured in o.Domains)
        {
            var domain = DnsCheck.Normalize(configured);
            if (domain is null)
            {
                ctx.Add(new DiagStep(DnsRecordChecks.Id($"{configured}:domain"), $"domain {configured}", DiagStatus.Info, $"reading {configured} from Domains",
                    "not a DNS domain name (a single label such as localhost): it has no public records to check", Data: new JsonObject { ["domain"] = configured }));
                continue;
            }
            var prefix = domain + ":";
            await DnsRecordChecks.SpfAsync(ctx, domain, ips, [], prefix, cancellationToken);
            if (keys is not null)
            {
                var own = keys.KeysFor(domain);
                if (own.Count == 0)
                {
                    ctx.Add(new DiagStep($"{prefix}dkim", $"DKIM keys of {domain}", DiagStatus.Warn, $"looking for keys of {domain} in {Path.Combine(o.DataDirectory, "dkim")}",
                        "none", "dkim_no_key",
                        $"Postern signs mail of {domain} with no DKIM key: it then rests on SPF alone, which forwarding breaks, and DMARC fails for forwarded mail",
                        $"make a key and publish the record it prints: postern dkim keygen --domain {domain}", new JsonObject { ["domain"] = domain }));
                }
                foreach (var key in own)
                {
                    await DnsRecordChecks.DkimAsync(ctx, key.Domain, key.Selector, key, prefix, cancellationToken);
                }
            }
            await DnsRecordChecks.DmarcAsync(ctx, domain, prefix, cancellationToken);
        }
        // Keys of other domains (a From: domain users send as that is not one of Domains) sign too.
        var covered = o.Domains.Select(DnsCheck.Normalize).OfType<string>().SelectMany(d => keys?.KeysFor(d) ?? []).ToHashSet();
        foreach (var key in keys?.Keys.Where(k => !covered.Contains(k)) ?? [])
        {
            await DnsRecordChecks.DkimAsync(ctx, key.Domain, key.Selector, key, key.Domain + ":", cancellationToken);
        }

        await SelfServerChecks.OutboundAsync(ctx, args.Value("--probe") ?? DefaultProbe, cancellationToken);
        SelfServerChecks.Certificate(ctx);
        await SelfServerChecks.ListenersAsync(ctx, cancellationToken);
        await SelfServerChecks.QueueAsync(ctx);
    }

    private const string Tried = "--ip, then Delivery.BindAddresses, then the address this host routes to the internet from";

    /// <summary>The addresses mail leaves from: --ip, else Delivery.BindAddresses, else the one the system routes to the internet from.</summary>
    private static List<IPAddress> Sending(DiagContext ctx, Arguments args)
    {
        var (ips, source) = SendingAddresses.Given(args);
        if (ips.Count == 0)
        {
            (ips, source) = SendingAddresses.Configured(ctx.Options);
        }
        if (ips.Count > 0)
        {
            SendingAddresses.Report(ctx, ips, source, Tried, "");
            return ips;
        }
        // The address a UDP socket "connected" to a public address gets: the system's choice of route.
        // No packet is sent.
        var routed = new[] { (AddressFamily.InterNetwork, "8.8.8.8"), (AddressFamily.InterNetworkV6, "2001:4860:4860::8888") }
            .Select(p => RouteAddress(p.Item1, IPAddress.Parse(p.Item2))).OfType<IPAddress>().ToList();
        var data = new JsonObject { ["addresses"] = DnsRecordChecks.Array(routed.Select(i => i.ToString())), ["source"] = "route" };
        const string tried = Tried;
        if (routed.Count == 0)
        {
            ctx.Add(new DiagStep("sending_ip", "this server's sending address", DiagStatus.Warn, tried, "no route to the internet", "sending_ip_unknown",
                "this host has no route to the internet, so it cannot deliver remote mail, and its reverse DNS and SPF are not checked",
                "give the address mail leaves from with --ip IP, and check the host's network (default route)", data));
            return [];
        }
        var usable = routed.Where(ip => !IsPrivate(ip)).ToList();
        if (usable.Count == 0)
        {
            ctx.Add(new DiagStep("sending_ip", "this server's sending address", DiagStatus.Warn, tried,
                $"{string.Join(", ", routed)}: private, behind address translation (NAT)", "sending_ip_private",
                "receivers see the public address of the router, not this one, and this check does not know it: reverse DNS and SPF are not checked",
                "give the public address with --ip IP (the address https://ifconfig.me shows from this host); a mail server is best on a public address of its own", data));
            return [];
        }
        ctx.Add(new DiagStep("sending_ip", "this server's sending address", DiagStatus.Info, tried, $"{string.Join(", ", usable)} (the route to the internet)", Data: data));
        return usable;
    }

    private static IPAddress? RouteAddress(AddressFamily family, IPAddress publicAddress)
    {
        try
        {
            using var socket = new Socket(family, SocketType.Dgram, ProtocolType.Udp);
            socket.Connect(publicAddress, 53);
            return SendingAddresses.Canonical(((IPEndPoint)socket.LocalEndPoint!).Address);
        }
        catch (SocketException)
        {
            return null;
        }
    }

    private static readonly IPNetwork[] PrivateNetworks = [.. new[]
    {
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10",
    }.Select(n => IPNetwork.Parse(n))];

    /// <summary>RFC 1918, RFC 6598 (carrier-grade NAT), loopback, link-local and RFC 4193 unique local addresses.</summary>
    internal static bool IsPrivate(IPAddress ip) => PrivateNetworks.Any(n => n.Contains(ip));

    /// <summary>Hostname resolves; returns its addresses.</summary>
    private static async Task<IReadOnlyList<IPAddress>> HostnameAsync(DiagContext ctx, string hostname, IReadOnlyList<IPAddress> ips, CancellationToken cancellationToken)
    {
        const string id = "hostname";
        var title = $"Hostname {hostname}";
        var tried = $"A and AAAA of {hostname}, asking {ctx.DnsDescription}";
        var data = new JsonObject { ["hostname"] = hostname };
        var answer = await ctx.WaitAsync($"asking for the addresses of {hostname}", DnsRecordChecks.AllAddressesAsync(ctx, hostname, cancellationToken));
        var addresses = answer.Records.Select(SendingAddresses.Canonical).Distinct().ToList();
        data["addresses"] = DnsRecordChecks.Array(addresses.Select(a => a.ToString()));
        if (answer.Status == DnsStatus.TempError)
        {
            ctx.Add(DnsRecordChecks.Unreachable(ctx, id, title, tried, data));
            return [];
        }
        var example = ips.Count > 0 ? ips[0].ToString() : "IP";
        if (addresses.Count == 0)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, answer.Status == DnsStatus.NxDomain ? $"{hostname} does not exist (NXDOMAIN)" : "no A or AAAA record", "hostname_unresolved",
                $"{hostname} is the name this server gives in its greeting and EHLO (Hostname): receivers that look it up find nothing and refuse or score down its mail, and it cannot match the PTR of the sending address",
                $"publish {hostname}. IN {(ips.Count > 0 && ips[0].AddressFamily == AddressFamily.InterNetworkV6 ? "AAAA" : "A")} {example}, or set Hostname to the server's name that has one", data));
            return [];
        }
        if (ips.Count > 0 && !ips.Any(addresses.Contains))
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, $"{string.Join(", ", addresses)}, not the sending address {string.Join(", ", ips)}", "hostname_not_sending_ip",
                $"mail leaves from {string.Join(", ", ips)} but says EHLO {hostname}, which resolves elsewhere: receivers that check the EHLO name against the client's address score it down",
                $"make {hostname} resolve to {example}, or set Hostname to the name of {example}", data));
            return addresses;
        }
        ctx.Add(new DiagStep(id, title, DiagStatus.Pass, tried, string.Join(", ", addresses), Data: data));
        return addresses;
    }
}
