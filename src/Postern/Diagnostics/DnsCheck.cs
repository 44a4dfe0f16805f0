using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using DnsClient;
using Postern.Invocation;
using Postern.MailAuth.Dns;
using Postern.Server.Delivery;

namespace Postern.Diagnostics;

/// <summary>
/// `postern diag dns DOMAIN [--selector S,...] [--ip IP,...]`: the DNS records mail depends on, each
/// looked up as a sending or receiving server would, parsed, and its faults named: MX (null MX, none,
/// a host without an address or behind a CNAME), reverse DNS of each MX address and of this server's
/// sending address, SPF (one record, its syntax, its lookups, whether it covers the sending address),
/// DKIM (each selector given, plus Postern's own for the domain, compared with Postern's key), DMARC
/// (its policy in words) and the MTA-STS TXT record.
/// </summary>
public sealed class DnsCheck : IDiagVerb
{
    // More MX hosts than this are unusual; their addresses say nothing new.
    private const int MaxMxHosts = 10;

    public string Name => "dns";

    public string Usage => "diag dns DOMAIN [--selector S,...] [--ip IP,...]";

    public string Summary => "MX, reverse DNS, SPF, DKIM, DMARC and MTA-STS records, each parsed";

    public IReadOnlyList<string> Options => ["--selector", "--ip"];

    public string Target(Arguments args)
    {
        if (args.Positional.Count != 1 || Normalize(args.Positional[0]) is null)
        {
            throw new UsageException($"{Usage}: one domain name");
        }
        SendingAddresses.Given(args);
        return Normalize(args.Positional[0])!;
    }

    public async Task RunAsync(DiagContext ctx, Arguments args, CancellationToken cancellationToken)
    {
        var domain = Normalize(args.Positional[0])!;
        var (ips, source) = SendingAddresses.Given(args);
        if (ips.Count == 0 && ctx.HasConfiguration)
        {
            (ips, source) = SendingAddresses.Configured(ctx.Options);
        }

        // MX, and the addresses of each host.
        var hosts = await MxAsync(ctx, domain, cancellationToken);
        if (hosts is null)
        {
            return; // the domain does not exist: nothing else can be found
        }
        var mxAddresses = new Dictionary<IPAddress, string>();
        var lookup = new LookupClient(LookupOptions(ctx));
        foreach (var host in hosts.Take(MaxMxHosts))
        {
            foreach (var a in await HostAsync(ctx, lookup, host, cancellationToken))
            {
                mxAddresses.TryAdd(a, host);
            }
        }

        // This server's sending address, and reverse DNS of every address.
        SendingAddresses.Report(ctx, ips, source, "--ip, then Delivery.BindAddresses of the configuration", "give it with --ip IP (or run with this server's configuration, for Delivery.BindAddresses)");
        foreach (var (ip, host) in mxAddresses.Where(m => !ips.Contains(m.Key)))
        {
            await DnsRecordChecks.PtrAsync(ctx, ip, $"MX host {host}", DiagStatus.Warn, null, cancellationToken);
        }
        foreach (var ip in ips)
        {
            var role = mxAddresses.TryGetValue(ip, out var host) ? $"sending address and MX host {host}" : "sending address";
            await DnsRecordChecks.PtrAsync(ctx, ip, role, DiagStatus.Fail, ctx.HasConfiguration ? ctx.Options.Hostname : null, cancellationToken);
        }

        await DnsRecordChecks.SpfAsync(ctx, domain, ips, mxAddresses.Keys, "", cancellationToken);
        await DkimAsync(ctx, domain, args, cancellationToken);
        await DnsRecordChecks.DmarcAsync(ctx, domain, "", cancellationToken);
        await MtaStsAsync(ctx, domain, cancellationToken);
    }

    /// <summary>The MX step; the hosts mail goes to in preference order (the domain itself for an implicit MX), or null when the domain does not exist.</summary>
    private static async Task<List<string>?> MxAsync(DiagContext ctx, string domain, CancellationToken cancellationToken)
    {
        const string id = "mx";
        var title = $"MX of {domain}";
        var tried = $"MX of {domain}, asking {ctx.DnsDescription}";
        var data = new JsonObject { ["domain"] = domain };
        var mx = await ctx.WaitAsync($"asking for the MX of {domain}", ctx.Dns.MxAsync(domain, cancellationToken));
        var example = ctx.HasConfiguration ? ctx.Options.Hostname : $"mail.{domain}";
        switch (mx.Status)
        {
            case DnsStatus.TempError:
                ctx.Add(DnsRecordChecks.Unreachable(ctx, id, title, tried, data));
                return [];
            case DnsStatus.NxDomain:
                ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, $"{domain} does not exist (NXDOMAIN)", "domain_not_found",
                    $"{domain} is not in DNS at all: mail to it bounces, and receivers refuse mail from it",
                    "check the spelling; a new domain needs its zone published at its DNS provider (and the domain delegated to it)", data));
                return null;
        }
        var records = mx.Records.OrderBy(r => r.Preference).ThenBy(r => r.Exchange, StringComparer.OrdinalIgnoreCase).ToList();
        data["records"] = new JsonArray([.. records.Select(r => new JsonObject { ["preference"] = r.Preference, ["exchange"] = r.Exchange.Length == 0 ? "." : r.Exchange })]);
        data["null_mx"] = records.Any(r => r.Exchange.Length == 0);
        data["implicit"] = records.Count == 0;
        var listed = string.Join(", ", records.Select(r => $"{r.Preference} {(r.Exchange.Length == 0 ? "." : r.Exchange)}"));
        if (records.Count == 0)
        {
            // RFC 5321 §5.1: without MX records the domain itself is the host, with its A/AAAA records.
            var own = await ctx.WaitAsync($"asking for the addresses of {domain}", DnsRecordChecks.AllAddressesAsync(ctx, domain, cancellationToken));
            if (own.Records.Count > 0)
            {
                ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, $"no MX record; {domain} has the addresses {string.Join(", ", own.Records)}", "mx_missing",
                    $"without MX, senders deliver to {domain}'s own address (the implicit MX of RFC 5321 §5.1): it works only if that host receives mail, and some senders do not try",
                    $"publish an MX record naming the mail server: {domain}. IN MX 10 {example}.", data));
                return [domain];
            }
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, "no MX record, and no A or AAAA record either", "mx_missing",
                $"nothing says where mail for {domain} goes: senders bounce it",
                $"publish an MX record naming the mail server: {domain}. IN MX 10 {example}. (and give {example} an A record)", data));
            return [];
        }
        if (records.Any(r => r.Exchange.Length == 0))
        {
            if (records.Count > 1)
            {
                ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, listed, "mx_null_mixed",
                    "RFC 7505 §3: a null MX (\".\") must be the only MX record; mixed with others, senders may bounce the mail or deliver it, depending on which they read",
                    $"to receive mail, delete the MX record \".\"; to receive none, delete the others", data));
                return [.. records.Where(r => r.Exchange.Length > 0).Select(r => r.Exchange.ToLowerInvariant()).Distinct()];
            }
            ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, $"{listed}: a null MX (RFC 7505)", "mx_null",
                $"the null MX says {domain} receives no mail at all: senders bounce mail to it at once, and receivers may refuse mail from it (RFC 7505 §4.2), since replies and bounces could not come back",
                $"right for a domain that never receives mail; to receive mail, replace it with an MX naming the mail server: {domain}. IN MX 10 {example}.", data));
            return [];
        }
        ctx.Add(new DiagStep(id, title, DiagStatus.Pass, tried, $"{listed} (tried in this order, lowest first)", Data: data));
        return [.. records.Select(r => r.Exchange.ToLowerInvariant()).Distinct()];
    }

    /// <summary>The step of one MX host: its addresses, and whether the name is an alias.</summary>
    private static async Task<IReadOnlyList<IPAddress>> HostAsync(DiagContext ctx, LookupClient lookup, string host, CancellationToken cancellationToken)
    {
        var id = DnsRecordChecks.Id($"mx.{host}");
        var title = $"addresses of MX host {host}";
        var tried = $"A and AAAA of {host}, asking {ctx.DnsDescription}";
        var data = new JsonObject { ["host"] = host };
        if (PortCheck.IsIpLiteral(host, out _))
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, $"reading the MX target {host}", "an IP address, not a host name", "mx_host_is_address",
                "RFC 5321 §5.1: an MX names a host, never an address; senders look up the address as a name, find nothing and bounce the mail",
                $"give the server a name with an A record (mail.DOMAIN. IN A {host}) and name that in the MX", data));
            return [];
        }
        var addresses = await ctx.WaitAsync($"asking for the addresses of {host}", DnsRecordChecks.AllAddressesAsync(ctx, host, cancellationToken));
        data["addresses"] = DnsRecordChecks.Array(addresses.Records.Select(a => a.ToString()));
        if (addresses.Status == DnsStatus.TempError)
        {
            ctx.Add(DnsRecordChecks.Unreachable(ctx, id, title, tried, data));
            return [];
        }
        if (addresses.Records.Count == 0)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, addresses.Status == DnsStatus.NxDomain ? $"{host} does not exist (NXDOMAIN)" : "no A or AAAA record", "mx_host_no_address",
                $"senders cannot find where {host} is, so mail sent to it is deferred and finally bounced",
                $"publish the server's address: {host}. IN A IP (and AAAA for IPv6), or correct the MX record", data));
            return [];
        }
        var alias = await CnameAsync(lookup, host, cancellationToken);
        data["cname"] = alias;
        var listed = string.Join(", ", addresses.Records);
        if (alias is not null)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, $"{host} is an alias (CNAME) of {alias}; addresses {listed}", "mx_cname",
                "RFC 2181 §10.3 and RFC 5321 §5.1: an MX must name a host, not an alias; most senders follow it anyway, some refuse",
                $"name the host itself in the MX ({alias}), or replace the CNAME with A/AAAA records", data));
            return addresses.Records;
        }
        ctx.Add(new DiagStep(id, title, DiagStatus.Pass, tried, listed, Data: data));
        return addresses.Records;
    }

    /// <summary>The target of a CNAME at <paramref name="host"/>, or null (also when the question fails: it only adds a warning).</summary>
    private static async Task<string?> CnameAsync(LookupClient lookup, string host, CancellationToken cancellationToken)
    {
        try
        {
            var response = await lookup.QueryAsync(host, QueryType.A, QueryClass.IN, cancellationToken).ConfigureAwait(false);
            return response.Answers.CnameRecords().FirstOrDefault()?.CanonicalName.Value.TrimEnd('.');
        }
        catch (Exception e) when (e is DnsResponseException or System.Net.Sockets.SocketException or IOException or TimeoutException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    // IMailAuthDns answers addresses only; a CNAME is seen in the raw answer, asked of the same servers.
    internal static LookupClientOptions LookupOptions(DiagContext ctx)
    {
        var options = ctx.DnsServers.Count == 0 ? new LookupClientOptions() : new LookupClientOptions([.. ctx.DnsServers]);
        options.UseCache = false;
        options.Timeout = ctx.Timeout;
        options.Retries = 0;
        options.ThrowDnsErrors = false;
        return options;
    }

    private static async Task DkimAsync(DiagContext ctx, string domain, Arguments args, CancellationToken cancellationToken)
    {
        var given = (args.Value("--selector") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToLowerInvariant()).ToList();
        var own = ctx.HasConfiguration ? OwnKeys.Load(ctx, "") : null;
        var mine = own?.KeysFor(domain).Where(k => k.Domain == domain).ToList() ?? [];
        var selectors = given.Concat(mine.Select(k => k.Selector)).Distinct(StringComparer.Ordinal).ToList();
        if (selectors.Count == 0)
        {
            ctx.Add(new DiagStep("dkim", $"DKIM keys of {domain}", DiagStatus.Info, "looking for selectors to check: --selector, and Postern's own keys of the domain",
                ctx.HasConfiguration ? $"none given, and Postern has no key for {domain}" : "none given (and no configuration, so no own keys)",
                Data: new JsonObject { ["domain"] = domain }));
            return;
        }
        foreach (var selector in selectors)
        {
            await DnsRecordChecks.DkimAsync(ctx, domain, selector, mine.FirstOrDefault(k => k.Selector == selector), "", cancellationToken);
        }
    }

    /// <summary>The MTA-STS TXT record (RFC 8461 §3.1): its presence, version and id.</summary>
    private static async Task MtaStsAsync(DiagContext ctx, string domain, CancellationToken cancellationToken)
    {
        const string id = "mta_sts";
        var name = $"_mta-sts.{domain}";
        var title = $"MTA-STS of {domain}";
        var tried = $"TXT of {name}, asking {ctx.DnsDescription}";
        var data = new JsonObject { ["name"] = name };
        var txt = await ctx.WaitAsync($"asking for {name}", ctx.Dns.TxtAsync(name, cancellationToken));
        if (txt.Status == DnsStatus.TempError)
        {
            ctx.Add(DnsRecordChecks.Unreachable(ctx, id, title, tried, data));
            return;
        }
        // RFC 8461 §3.1: records that do not begin with v=STSv1; are discarded.
        var records = txt.Records.Where(r => r.StartsWith("v=STSv1", StringComparison.Ordinal)).ToList();
        data["records"] = DnsRecordChecks.Array(records);
        if (records.Count == 0)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Info, tried, "no MTA-STS record: senders use TLS to your MX when they can, but do not insist (optional; RFC 8461)", Data: data));
            return;
        }
        if (records.Count > 1)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, $"{records.Count} records starting v=STSv1", "mta_sts_multiple",
                "RFC 8461 §3.1: with more than one record, senders act as if there were no policy",
                $"keep one TXT record at {name}", data));
            return;
        }
        var fields = records[0].Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var policyId = fields.Select(f => f.Split('=', 2)).Where(kv => kv.Length == 2 && kv[0] == "id").Select(kv => kv[1]).FirstOrDefault();
        data["id"] = policyId;
        if (fields[0] != "v=STSv1" || policyId is null || policyId.Length is 0 or > 32 || !policyId.All(char.IsAsciiLetterOrDigit))
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, $"\"{records[0]}\": {(policyId is null ? "no id=" : $"id={policyId} is not 1 to 32 letters and digits")}", "mta_sts_syntax",
                "RFC 8461 §3.1: senders ignore a record they cannot parse, so the policy is not applied",
                $"publish {name}. IN TXT \"v=STSv1; id={ctx.Time.GetUtcNow().ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture)}\" (change id= whenever the policy file changes)", data));
            return;
        }
        ctx.Add(new DiagStep(id, title, DiagStatus.Pass, tried,
            $"\"{records[0]}\": policy id {policyId}; senders that support MTA-STS fetch the policy at https://mta-sts.{domain}/.well-known/mta-sts.txt (not fetched here)", Data: data));
    }

    /// <summary>A domain in lower case with A-labels and no final dot, or null when it is not a domain name.</summary>
    internal static string? Normalize(string domain)
    {
        try
        {
            var ascii = new IdnMapping().GetAscii(domain.TrimEnd('.')).ToLowerInvariant();
            return ascii.Contains('.') && ascii.Length <= 253 && ascii.Split('.').All(l => l.Length is > 0 and <= 63 && l.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_')) ? ascii : null;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }
}
