using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Postern.Invocation;
using Postern.MailAuth.Dns;
using Postern.Protocol.Addresses;
using Postern.Server.Delivery;

namespace Postern.Diagnostics;

/// <summary>
/// `postern diag deliver ADDRESS [--from A] [--port N]`: walks a delivery to ADDRESS the way
/// Postern's own delivery does it (RFC 5321 §5.1; docs/delivery.md), without sending anything: the
/// MX of the domain (null MX, no MX and the fallback to the domain's address, DNS trouble), the hosts
/// in the order they are tried, a connection to each address until one answers (from
/// Delivery.BindAddresses, to Delivery.RemotePort), the greeting, EHLO, STARTTLS when offered, EHLO
/// again, MAIL FROM, and RCPT TO — whose answer is explained by <see cref="ReplyExplainer"/> — then
/// RSET and QUIT. Never DATA.
/// </summary>
public sealed class DeliverCheck : IDiagVerb
{
    public string Name => "deliver";

    public string Usage => "diag deliver ADDRESS [--from SENDER] [--port N]";

    public string Summary => "walk a delivery without sending: MX, connect, TLS, EHLO, MAIL, the RCPT answer explained";

    public IReadOnlyList<string> Options => ["--from", "--port"];

    public string Target(Arguments args)
    {
        if (args.Positional.Count != 1 || AddressParser.TryParseMailbox(args.Positional[0], true, out _) != AddressError.None)
        {
            throw new UsageException($"{Usage}: one mail address, like someone@example.com");
        }
        if (args.Value("--from") is { Length: > 0 } from && AddressParser.TryParseMailbox(from, true, out _) != AddressError.None)
        {
            throw new UsageException($"--from {from}: a mail address (or leave it out for the null sender <>, as bounces use)");
        }
        Port(args, 25);
        return args.Positional[0];
    }

    public async Task RunAsync(DiagContext ctx, Arguments args, CancellationToken cancellationToken)
    {
        AddressParser.TryParseMailbox(args.Positional[0], true, out var mailbox);
        var address = args.Positional[0];
        var domain = mailbox!.Domain;
        var port = Port(args, ctx.Options.Delivery.RemotePort);
        var from = args.Value("--from") ?? "";
        Route(ctx, domain);

        var hosts = mailbox.IsAddressLiteral ? Literal(ctx, domain) : await HostsAsync(ctx, domain, cancellationToken);
        if (hosts is null)
        {
            return;
        }
        foreach (var host in hosts)
        {
            foreach (var ip in host.Addresses)
            {
                var last = ReferenceEquals(host, hosts[^1]) && ip.Equals(host.Addresses[^1]);
                var (probe, settled) = await ConnectAsync(ctx, host.Name, ip, port, last, cancellationToken);
                if (probe is null)
                {
                    if (settled)
                    {
                        return; // a 5xx greeting: Postern bounces here, it tries no other host
                    }
                    continue;
                }
                await using (probe)
                {
                    await TalkAsync(ctx, probe, host.Name, address, mailbox.IsInternational, from, cancellationToken);
                }
                return;
            }
        }
        var tried = string.Join(", ", hosts.SelectMany(h => h.Addresses.Select(a => $"{h.Name}[{a}]")));
        var failures = ctx.Report.Steps.Where(s => s.Id.StartsWith("connect.", StringComparison.Ordinal)).Select(s => s.Code).ToList();
        ctx.Add(NoneAnswered(tried, port, failures, ctx.HasConfiguration && ctx.Options.Relay.Smarthost is { Host.Length: > 0 }));
    }

    // ---- the route and the hosts ----

    /// <summary>When this server would not take the MX path at all, say so first.</summary>
    private static void Route(DiagContext ctx, string domain)
    {
        if (!ctx.HasConfiguration)
        {
            return;
        }
        if (ctx.Options.Domains.Any(d => d.Equals(domain, StringComparison.OrdinalIgnoreCase)))
        {
            ctx.Add(new DiagStep("route", "local domain", DiagStatus.Info, $"Domains of this server's configuration",
                $"{domain} is one of this server's Domains: Postern delivers such mail into its own Maildir; below is what other servers see when they send to it",
                Data: new JsonObject { ["local"] = true }));
        }
        else if (ctx.Options.Relay.Smarthost is { Host.Length: > 0 } smarthost)
        {
            ctx.Add(new DiagStep("route", "smarthost", DiagStatus.Info, "Relay.Smarthost of this server's configuration",
                $"Relay.Smarthost is set: Postern hands this mail to {smarthost.Host}:{smarthost.Port}, which delivers it by the MX path walked below (`postern diag auth {smarthost.Host}` checks the way to the smarthost)",
                Data: new JsonObject { ["smarthost"] = smarthost.Host }));
        }
    }

    /// <summary>One host to try, with its addresses in the order Postern tries them (IPv6 first).</summary>
    private sealed record Host(string Name, int Preference, List<IPAddress> Addresses);

    private static List<Host>? Literal(DiagContext ctx, string domain)
    {
        var inner = domain[1..^1];
        var ip = IPAddress.Parse(inner.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase) ? inner[5..] : inner);
        ctx.Add(new DiagStep("mx", "address literal", DiagStatus.Info, $"the domain part {domain}", $"an address literal: no DNS, the mail goes to {ip} directly",
            Data: new JsonObject { ["domain"] = domain, ["literal"] = ip.ToString() }));
        return [new Host(ip.ToString(), 0, [ip])];
    }

    /// <summary>The MX step and the hosts step; null (with a failed step) when there is nowhere to go.</summary>
    private static async Task<List<Host>?> HostsAsync(DiagContext ctx, string domain, CancellationToken cancellationToken)
    {
        var tried = $"MX of {domain}, asking {ctx.DnsDescription}";
        var data = new JsonObject { ["domain"] = domain };
        var mx = await ctx.WaitAsync($"MX of {domain}", ctx.Dns.MxAsync(domain, cancellationToken));
        switch (mx.Status)
        {
            case DnsStatus.TempError:
                ctx.Add(new DiagStep("mx", "MX", DiagStatus.Fail, tried, $"no answer within {SmtpProbe.Seconds(ctx.Timeout)}, or SERVFAIL", "dns_unreachable",
                    $"DNS gives no answer for {domain}: its name servers are down or misconfigured, or the resolver asked ({ctx.DnsDescription}) does not answer; Postern defers such mail and tries again, it never bounces on this",
                    "if other domains resolve, the domain's own DNS is broken (its owner must fix it); otherwise check Dns.Servers (or --dns here); `postern diag dns DOMAIN` shows more", data));
                return null;
            case DnsStatus.NxDomain:
                ctx.Add(new DiagStep("mx", "MX", DiagStatus.Fail, tried, $"{domain} does not exist (NXDOMAIN)", "domain_not_found",
                    $"the domain {domain} does not exist: Postern bounces such mail at once (550 5.1.2)", "check the part after @ for a typo", data));
                return null;
        }
        var records = mx.Records;
        data["mx"] = new JsonArray([.. records.Select(r => (JsonNode)new JsonObject { ["preference"] = r.Preference, ["host"] = r.Exchange })]);
        // RFC 7505 §3: one MX, preference 0, the root as exchange.
        if (records.Count == 1 && records[0].Exchange is "" or ".")
        {
            data["null_mx"] = true;
            ctx.Add(new DiagStep("mx", "MX", DiagStatus.Fail, tried, $"a null MX (0 .): {domain} says it takes no mail", "mx_null",
                $"{domain} publishes a null MX (RFC 7505): it takes no mail at all, and Postern bounces such mail at once (556 5.1.10)",
                "the address cannot receive mail: ask the recipient for another one (or, if the domain is yours and should take mail, replace the null MX with real MX records)", data));
            return null;
        }
        var named = records.Where(r => r.Exchange is not ("" or ".")).ToList();
        // Which hosts, in which order, is what Postern's own delivery finds: the same MxResolver.
        var resolution = await ctx.WaitAsync($"AAAA and A of the hosts of {domain}",
            new MxResolver(new DnsClient.LookupClient(DnsCheck.LookupOptions(ctx))).ResolveAsync(domain, cancellationToken));
        if (named.Count == 0)
        {
            // RFC 5321 §5.1: no MX, so the domain itself is the only host.
            data["implicit"] = true;
            switch (resolution)
            {
                case MxResolution.Hosts { Implicit: true } own:
                    var addresses = own.List[0].Addresses;
                    data["addresses"] = new JsonArray([.. addresses.Select(a => JsonValue.Create(a.ToString()))]);
                    ctx.Add(new DiagStep("mx", "MX", DiagStatus.Warn, $"{tried}, then AAAA and A of {domain}",
                        $"no MX record; the domain's own address is used instead: {string.Join(", ", addresses)}", "mx_missing",
                        $"{domain} publishes no MX, so mail goes to the domain's own address (RFC 5321 §5.1); that is often a web server that takes no mail",
                        $"if {domain} is yours, publish an MX record (e.g. `{domain}. IN MX 10 mail.{domain}.`) naming the host that takes its mail", data));
                    return [new Host(domain, 0, [.. addresses])];
                case MxResolution.NoSuchDomain:
                    ctx.Add(new DiagStep("mx", "MX", DiagStatus.Fail, $"{tried}, then AAAA and A of {domain}", "no MX record and no address record", "domain_not_found",
                        $"{domain} exists but has neither MX nor address records: nothing takes its mail, and Postern bounces such mail at once (550 5.1.2)",
                        "check the part after @ for a typo; if the domain is yours, publish an MX record naming the host that takes its mail", data));
                    return null;
                default:
                    ctx.Add(new DiagStep("mx", "MX", DiagStatus.Fail, $"{tried}, then AAAA and A of {domain}", "no MX record, and no answer for the domain's own address", "dns_unreachable",
                        $"{domain} has no MX, and DNS gave no answer for its address; Postern defers such mail", "try again later; check Dns.Servers (or --dns here)", data));
                    return null;
            }
        }
        ctx.Add(new DiagStep("mx", "MX", DiagStatus.Pass, tried,
            string.Join(", ", named.OrderBy(r => r.Preference).ThenBy(r => r.Exchange, StringComparer.Ordinal).Select(r => $"{r.Preference} {r.Exchange}")), Data: data));

        // The hosts by preference, as Postern tries them (it shuffles hosts of equal preference; here they are sorted by name).
        var found = resolution as MxResolution.Hosts;
        var hosts = (found?.List ?? []).OrderBy(h => h.Preference).ThenBy(h => h.Name, StringComparer.Ordinal)
            .Select(h => new Host(h.Name, h.Preference, [.. h.Addresses])).ToList();
        var skipped = found?.Skipped ?? named.Select(r => new SkippedHost(r.Exchange, r.Preference, resolution is MxResolution.Temporary)).ToList();
        var missing = skipped.Where(h => !h.Temporary).OrderBy(h => h.Preference).ThenBy(h => h.Name, StringComparer.Ordinal)
            .Select(h => h.Name + (PortCheck.IsIpLiteral(h.Name, out _) ? " (an address: an MX must name a host)" : "")).ToList();
        var temporary = skipped.Where(h => h.Temporary).OrderBy(h => h.Preference).ThenBy(h => h.Name, StringComparer.Ordinal).Select(h => h.Name).ToList();
        var json = new JsonArray();
        foreach (var (name, preference, addresses) in hosts.Select(h => (h.Name, h.Preference, h.Addresses))
            .Concat(skipped.Select(h => (h.Name, h.Preference, new List<IPAddress>()))).OrderBy(h => h.Item2).ThenBy(h => h.Item1, StringComparer.Ordinal))
        {
            json.Add(new JsonObject
            {
                ["host"] = name,
                ["preference"] = preference,
                ["addresses"] = new JsonArray([.. addresses.Select(a => JsonValue.Create(a.ToString()))]),
            });
        }
        var hostsTried = $"AAAA and A of each MX host, asking {ctx.DnsDescription}";
        var hostsData = new JsonObject { ["hosts"] = json };
        var order = string.Join("; ", hosts.Select(h => $"{h.Preference} {h.Name} ({string.Join(", ", h.Addresses)})"));
        var equal = named.GroupBy(r => r.Preference).Any(g => g.Count() > 1) ? " (hosts of equal preference are tried in random order)" : "";
        if (hosts.Count == 0)
        {
            ctx.Add(temporary.Count > 0
                ? new DiagStep("mx.hosts", "MX hosts", DiagStatus.Fail, hostsTried, $"no address found; no answer for {string.Join(", ", temporary)}", "dns_unreachable",
                    "DNS gave no answer for the MX hosts' addresses: Postern defers such mail and tries again", "try again later; check Dns.Servers (or --dns here)", hostsData)
                : new DiagStep("mx.hosts", "MX hosts", DiagStatus.Fail, hostsTried, $"no MX host has an address: {string.Join(", ", missing)}", "mx_host_no_address",
                    $"every MX of {domain} names a host without an A or AAAA record: Postern bounces such mail (550 5.1.2)",
                    $"the domain's owner must give its MX hosts address records, or point the MX at hosts that have them", hostsData));
            return null;
        }
        if (missing.Count > 0 || temporary.Count > 0)
        {
            ctx.Add(new DiagStep("mx.hosts", "MX hosts", DiagStatus.Warn, hostsTried,
                $"in the order tried: {order}{equal}; skipped, without an address: {string.Join(", ", missing.Concat(temporary))}", "mx_host_no_address",
                "some MX hosts have no address (or DNS did not answer for them): they are skipped, so mail has fewer places to go",
                "the domain's owner should give every MX host an A or AAAA record, or remove the MX records that name hosts without one", hostsData));
        }
        else
        {
            ctx.Add(new DiagStep("mx.hosts", "MX hosts", DiagStatus.Pass, hostsTried, $"in the order tried: {order}{equal}", Data: hostsData));
        }
        return hosts;
    }

    /// <summary>The addresses of a name, IPv6 first as Postern's delivery tries them; TempError when DNS gave none and did not answer.</summary>
    private static async Task<(List<IPAddress> List, bool TempError)> AddressesAsync(DiagContext ctx, string name, CancellationToken cancellationToken)
    {
        var found = await ctx.WaitAsync($"AAAA and A of {name}", DnsRecordChecks.AllAddressesAsync(ctx, name, cancellationToken));
        return ([.. found.Records.OrderBy(a => a.AddressFamily == AddressFamily.InterNetworkV6 ? 0 : 1)], found.Status == DnsStatus.TempError);
    }

    // ---- the connection and the dialogue ----

    /// <summary>
    /// TCP and the greeting; no probe (with a step saying why) when this address does not take the
    /// mail, and <c>Settled</c> when its answer ends the delivery (a 5xx greeting).
    /// </summary>
    private static async Task<(SmtpProbe? Probe, bool Settled)> ConnectAsync(DiagContext ctx, string host, IPAddress ip, int port, bool last, CancellationToken cancellationToken)
    {
        var id = $"connect.{ip}";
        var where = SmtpProbe.Describe(ip, port);
        var bind = Bind(ctx, ip);
        SmtpProbe probe;
        try
        {
            probe = await ctx.WaitAsync($"connecting to {host} {where}", SmtpProbe.ConnectAsync(ip, port, ctx.Timeout, bind, cancellationToken));
        }
        catch (SmtpProbeException e)
        {
            ctx.Add(ConnectFailed(id, ip, port, host, e, last, relay: false));
            return (null, false);
        }
        var data = new JsonObject { ["host"] = host, ["address"] = ip.ToString(), ["port"] = port, ["from"] = probe.Local.Address.ToString() };
        var tried = $"TCP to {host} {where}{(bind is null ? "" : $" from {bind} (Delivery.BindAddresses)")}, then the greeting";
        SmtpReply banner;
        try
        {
            banner = await ctx.WaitAsync($"waiting for the greeting of {host}", probe.ReadReplyAsync(cancellationToken));
        }
        catch (SmtpProbeException e)
        {
            await probe.DisposeAsync();
            data["failure"] = Word(e.Failure);
            ctx.Add(new DiagStep(id, $"connect to {host}", DiagStatus.Warn, tried, $"connected, then: {e.Message}", "no_greeting",
                $"{host} took the connection but gave no SMTP greeting: an overloaded server, a firewall or proxy in the way, or not an SMTP server at all",
                last ? "nothing answered: see below" : "Postern moves on to the next address; if it lasts, `postern diag port HOST` looks closer", data));
            return (null, false);
        }
        data["reply"] = banner.ToString();
        if (banner.Code == 220)
        {
            ctx.Add(new DiagStep(id, $"connect to {host}", DiagStatus.Pass, tried,
                $"connected in {probe.ConnectTime.TotalMilliseconds:0} ms from {probe.Local.Address}; greeting: {banner}", Data: data));
            return (probe, false);
        }
        await probe.DisposeAsync();
        var e2 = ReplyExplainer.Explain(banner);
        data["diagnosis"] = e2.Code;
        // A 4xx greeting moves delivery on to the next address; a 5xx one bounces the mail.
        ctx.Add(new DiagStep(id, $"connect to {host}", banner.IsTemporary ? DiagStatus.Warn : DiagStatus.Fail, tried,
            $"connected, but the greeting refuses: {banner}", e2.Code, e2.Cause, e2.Fix, data));
        return (null, !banner.IsTemporary);
    }

    private static async Task TalkAsync(DiagContext ctx, SmtpProbe probe, string host, string address, bool international, string from, CancellationToken cancellationToken)
    {
        var name = EhloName(ctx);
        try
        {
            // EHLO.
            var ehlo = await ctx.WaitAsync("EHLO", probe.CommandAsync($"EHLO {name}", cancellationToken));
            if (ehlo.Code != 250)
            {
                var helo = await probe.CommandAsync($"HELO {name}", cancellationToken);
                var e = ReplyExplainer.Explain(ehlo);
                if (!helo.IsPositive)
                {
                    ctx.Add(new DiagStep("ehlo", "EHLO", helo.IsTemporary ? DiagStatus.Warn : DiagStatus.Fail, $"EHLO {name}, then HELO {name}", $"EHLO: {ehlo}; HELO: {helo}",
                        e.Code, e.Cause, e.Fix, new JsonObject { ["name"] = name, ["reply"] = ehlo.ToString() }));
                    return;
                }
                ctx.Add(new DiagStep("ehlo", "EHLO", DiagStatus.Warn, $"EHLO {name}, then HELO {name}", $"EHLO refused ({ehlo}); HELO accepted", "no_esmtp",
                    $"{host} speaks only the old SMTP: no STARTTLS, SIZE or 8BITMIME, so mail to it goes in clear text",
                    "nothing to change here; if the server is yours, enable ESMTP (any current MTA has it)", new JsonObject { ["name"] = name, ["reply"] = ehlo.ToString() }));
            }
            else
            {
                ctx.Add(new DiagStep("ehlo", "EHLO", DiagStatus.Pass, $"EHLO {name}", $"{ehlo.Lines[0]}; offers {Capabilities(ehlo)}", Data: EhloData(name, ehlo)));
            }

            // STARTTLS, opportunistic (RFC 7435), as Postern does it to an MX.
            if (ehlo.Code == 250 && Offers(ehlo, "STARTTLS"))
            {
                var go = await ctx.WaitAsync("STARTTLS", probe.CommandAsync("STARTTLS", cancellationToken));
                if (go.Code != 220)
                {
                    ctx.Add(new DiagStep("starttls", "STARTTLS", DiagStatus.Warn, "STARTTLS", $"offered, but refused: {go}", "starttls_refused",
                        $"{host} offers STARTTLS and then refuses it: mail to it goes in clear text", "nothing to change here; if the server is yours, check its certificate and key settings",
                        new JsonObject { ["reply"] = go.ToString() }));
                }
                else
                {
                    TlsInfo tls;
                    try
                    {
                        tls = await ctx.WaitAsync("TLS handshake", probe.HandshakeAsync(host, cancellationToken));
                    }
                    catch (SmtpProbeException e)
                    {
                        ctx.Add(new DiagStep("starttls", "STARTTLS", DiagStatus.Fail, "STARTTLS, then the TLS handshake", e.Message, "tls_failed",
                            $"the TLS handshake with {host} fails: Postern defers the mail and tries the next address, then again later (it does not fall back to clear text on a broken handshake)",
                            "`postern diag port HOST` shows the handshake; if the server is yours, check its certificate, key and TLS versions", new JsonObject { ["failure"] = Word(e.Failure) }));
                        return;
                    }
                    ehlo = await probe.CommandAsync($"EHLO {name}", cancellationToken);
                    var certificate = tls.Certificate.GetNameInfo(System.Security.Cryptography.X509Certificates.X509NameType.SimpleName, false);
                    var data = new JsonObject
                    {
                        ["tls_version"] = tls.ProtocolName,
                        ["cipher"] = tls.Cipher.ToString(),
                        ["certificate"] = certificate,
                        ["certificate_trusted"] = tls.ChainTrusted && tls.NameMatches,
                        ["capabilities"] = new JsonArray([.. ehlo.Lines.Skip(1).Select(l => JsonValue.Create(l))]),
                    };
                    ctx.Add(new DiagStep("starttls", "STARTTLS", DiagStatus.Pass, $"STARTTLS, the TLS handshake, then EHLO {name} again",
                        $"{tls.ProtocolName}, {tls.Cipher}; certificate for {certificate}{(tls.ChainTrusted && tls.NameMatches ? "" : " (not trusted or not for this name: Postern does not check it when delivering to an MX, RFC 7435)")}; EHLO again: {ehlo.Code}",
                        Data: data));
                    if (ehlo.Code != 250)
                    {
                        var e = ReplyExplainer.Explain(ehlo);
                        ctx.Add(new DiagStep("ehlo", "EHLO after STARTTLS", DiagStatus.Fail, $"EHLO {name} over TLS", ehlo.ToString(), e.Code, e.Cause, e.Fix));
                        return;
                    }
                }
            }
            else
            {
                ctx.Add(new DiagStep("starttls", "STARTTLS", DiagStatus.Warn, "looking for STARTTLS in the EHLO reply", "not offered", "starttls_missing",
                    $"{host} does not offer STARTTLS: mail to it travels in clear text, readable on the way (Postern sends it anyway, as RFC 7435 opportunistic TLS allows)",
                    "nothing to change on this server; if the receiving server is yours, give it a certificate and enable STARTTLS (Postfix: smtpd_tls_security_level = may; Postern: Tls)",
                    new JsonObject { ["offered"] = false }));
            }

            // MAIL FROM.
            var utf8 = international && Offers(ehlo, "SMTPUTF8") ? " SMTPUTF8" : "";
            if (international && utf8.Length == 0)
            {
                ctx.Add(new DiagStep("mail", "MAIL FROM", DiagStatus.Fail, "looking for SMTPUTF8 in the EHLO reply", "not offered", "smtputf8_unsupported",
                    $"the address has non-ASCII characters, which need SMTPUTF8 (RFC 6531), and {host} does not offer it: Postern bounces such mail (553 5.6.7)",
                    "use an ASCII address for the recipient"));
                return;
            }
            var mail = await ctx.WaitAsync("MAIL FROM", probe.CommandAsync($"MAIL FROM:<{from}>{utf8}", cancellationToken));
            var mailData = new JsonObject { ["from"] = from, ["reply"] = mail.ToString() };
            var mailTried = $"MAIL FROM:<{from}>{utf8}{(from.Length == 0 ? " (the null sender, as bounces use; --from to give another)" : "")}";
            if (!mail.IsPositive)
            {
                var e = ReplyExplainer.Explain(mail);
                mailData["diagnosis"] = e.Code;
                ctx.Add(new DiagStep("mail", "MAIL FROM", mail.IsTemporary ? DiagStatus.Warn : DiagStatus.Fail, mailTried, $"refused: {mail}", e.Code, e.Cause, e.Fix, mailData));
                return;
            }
            ctx.Add(new DiagStep("mail", "MAIL FROM", DiagStatus.Pass, mailTried, mail.ToString(), Data: mailData));

            // RCPT TO: the answer this check is about.
            var rcpt = await ctx.WaitAsync("RCPT TO", probe.CommandAsync($"RCPT TO:<{address}>", cancellationToken));
            var rcptData = new JsonObject
            {
                ["address"] = address,
                ["reply"] = rcpt.ToString(),
                ["reply_code"] = rcpt.Code,
                ["enhanced_code"] = rcpt.Enhanced,
            };
            var rcptTried = $"RCPT TO:<{address}>, then RSET and QUIT (no DATA: nothing is sent)";
            if (rcpt.IsPositive)
            {
                ctx.Add(new DiagStep("rcpt", "RCPT TO", DiagStatus.Pass, rcptTried,
                    $"accepted: {rcpt} ({host} would take the message; some servers accept every recipient here and bounce later, so this is not proof that the mailbox exists)",
                    Data: rcptData));
            }
            else
            {
                var e = ReplyExplainer.Explain(rcpt);
                rcptData["diagnosis"] = e.Code;
                ctx.Add(new DiagStep("rcpt", "RCPT TO", rcpt.IsTemporary ? DiagStatus.Warn : DiagStatus.Fail, rcptTried,
                    $"{(rcpt.IsTemporary ? "deferred" : "refused")}: {rcpt}{(rcpt.IsTemporary ? " (Postern would retry later)" : " (Postern would bounce the mail)")}", e.Code, e.Cause, e.Fix, rcptData));
            }
            try
            {
                await probe.CommandAsync("RSET", cancellationToken);
            }
            catch (SmtpProbeException)
            {
                // The verdict is in; QUIT follows on dispose either way.
            }
        }
        catch (SmtpProbeException e)
        {
            ctx.Add(new DiagStep("dialogue", "SMTP dialogue", DiagStatus.Fail, $"the SMTP dialogue with {host}", e.Message, "connection_lost",
                $"{host} broke off the dialogue ({Word(e.Failure)}): Postern would defer the mail and try again",
                "try again; if it lasts, `postern diag port HOST` looks at the server", new JsonObject { ["failure"] = Word(e.Failure) }));
        }
    }

    private static bool Offers(SmtpReply ehlo, string keyword) =>
        ehlo.Lines.Skip(1).Any(l => l.Equals(keyword, StringComparison.OrdinalIgnoreCase) || l.StartsWith(keyword + " ", StringComparison.OrdinalIgnoreCase));

    private static string Capabilities(SmtpReply ehlo) => ehlo.Lines.Count > 1 ? string.Join(", ", ehlo.Lines.Skip(1)) : "no extensions";

    private static JsonObject EhloData(string name, SmtpReply ehlo)
    {
        var data = new JsonObject { ["name"] = name, ["capabilities"] = new JsonArray([.. ehlo.Lines.Skip(1).Select(l => JsonValue.Create(l))]) };
        var size = ehlo.Lines.Skip(1).FirstOrDefault(l => l.StartsWith("SIZE ", StringComparison.OrdinalIgnoreCase));
        if (size is not null && long.TryParse(size.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var max))
        {
            data["size"] = max;
        }
        return data;
    }

    // ---- shared with `diag relay` ----

    /// <summary>--port N, else the given default.</summary>
    internal static int Port(Arguments args, int fallback)
    {
        if (args.Value("--port") is not { } p)
        {
            return fallback;
        }
        if (!int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new UsageException($"--port {p}: a port number, 1 to 65535");
        }
        return port;
    }

    /// <summary>The name given in EHLO: this server's Hostname when there is a configuration, else the machine's name.</summary>
    internal static string EhloName(DiagContext ctx) =>
        ctx.HasConfiguration && ctx.Options.Hostname.Length > 0 ? ctx.Options.Hostname : System.Net.Dns.GetHostName();

    /// <summary>The address of Delivery.BindAddresses of the same family, when set.</summary>
    private static IPAddress? Bind(DiagContext ctx, IPAddress remote) =>
        ctx.Options.Delivery.BindAddresses.Select(a => IPAddress.TryParse(a, out var ip) ? ip : null)
            .FirstOrDefault(a => a is not null && a.AddressFamily == remote.AddressFamily);

    /// <summary>A host's addresses (an IP as it is; else AAAA and A), or null after a failed step with id <paramref name="id"/>.</summary>
    internal static async Task<List<IPAddress>?> ResolveHostAsync(DiagContext ctx, string host, string id, CancellationToken cancellationToken)
    {
        if (PortCheck.IsIpLiteral(host, out var literal))
        {
            return [literal];
        }
        var found = await AddressesAsync(ctx, host, cancellationToken);
        if (found.List.Count > 0)
        {
            return found.List;
        }
        ctx.Add(new DiagStep(id, $"resolve {host}", DiagStatus.Fail, $"AAAA and A of {host}, asking {ctx.DnsDescription}",
            found.TempError ? "no answer (timeout or SERVFAIL)" : "no address record (or the name does not exist)",
            found.TempError ? "dns_unreachable" : "host_not_found",
            found.TempError ? "DNS did not answer for the host's name" : $"{host} has no A or AAAA record",
            found.TempError ? "try again, or ask another resolver (--dns)" : "check the name (the host's MX name, not the domain, e.g. mx.example.com)"));
        return null;
    }

    /// <summary>A connection that could not be made, told apart as refused, timed out, unreachable.</summary>
    internal static DiagStep ConnectFailed(string id, IPAddress ip, int port, string host, SmtpProbeException e, bool last, bool relay)
    {
        var where = SmtpProbe.Describe(ip, port);
        var next = last ? "" : relay ? "; the next address is tried" : "; Postern moves on to the next address, as this check does";
        var data = new JsonObject { ["host"] = host, ["address"] = ip.ToString(), ["port"] = port, ["failure"] = Word(e.Failure) };
        var (code, cause) = e.Failure switch
        {
            ProbeFailure.Refused => ("port_refused", $"{where} refused the connection: the host is up, but nothing listens on port {port} (or a firewall rejects){next}"),
            ProbeFailure.Timeout => ("port_timeout", $"no answer from {where}: a firewall drops the packets (often your own provider blocking outbound port {port}), or the host is down{next}"),
            ProbeFailure.Unreachable => ("port_unreachable", $"no route to {where} from here{(ip.AddressFamily == AddressFamily.InterNetworkV6 ? " (IPv6 without IPv6 connectivity?)" : "")}{next}"),
            _ => ("connect_failed", $"the connection to {where} failed: {e.Message}{next}"),
        };
        return new DiagStep(id, $"connect to {host}", DiagStatus.Warn, $"TCP to {host} {where}", e.Message, code, cause,
            e.Failure == ProbeFailure.Timeout
                ? "if every host times out, outbound port 25 is blocked here: send through your provider's smarthost (Relay.Smarthost); `postern diag port HOST` compares 25 with 587"
                : "`postern diag port HOST` looks closer; if the server is yours, check that it listens on this address and port",
            data);
    }

    /// <summary>
    /// The closing step when no address took the connection. With <paramref name="smarthost"/>
    /// (this server sends through Relay.Smarthost) timeouts are only a warning: a blocked port 25
    /// here does not stop its mail.
    /// </summary>
    internal static DiagStep NoneAnswered(string tried, int port, IReadOnlyList<string?> failures, bool smarthost = false)
    {
        var allTimeouts = failures.Count > 0 && failures.All(f => f == "port_timeout");
        var allRefused = failures.Count > 0 && failures.All(f => f == "port_refused");
        var cause = allTimeouts
            ? $"no server answered on port {port}: when every host times out, outbound port {port} is most likely blocked by your provider or a firewall here"
            : allRefused
                ? $"every server refused connections on port {port}: nothing takes mail there (Postern defers and retries)"
                : $"no server took the connection on port {port} (see each address above): Postern defers and retries";
        var fix = allTimeouts && smarthost
            ? "Relay.Smarthost is set, so this server never connects to MX hosts itself and a blocked port 25 here does not stop its mail; `postern diag auth SMARTHOST` checks the way to the smarthost"
            : allTimeouts
            ? "send through your provider's smarthost (Relay.Smarthost), or ask the provider to open outbound port 25; `postern diag port HOST --ports 25,587` tells the cases apart"
            : "if the servers are yours, start them or open port 25 in their firewall; otherwise wait, or tell the domain's postmaster";
        return new DiagStep("connect", "no server answered", allTimeouts && smarthost ? DiagStatus.Warn : DiagStatus.Fail, tried, "no address took the connection and greeted", "no_server_answers", cause, fix,
            new JsonObject { ["port"] = port, ["failures"] = new JsonArray([.. failures.Select(f => JsonValue.Create(f))]) });
    }

    private static string Word(ProbeFailure failure) => failure.Word();
}
