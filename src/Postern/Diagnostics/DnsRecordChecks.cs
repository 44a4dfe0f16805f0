using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Parameters;
using Postern.MailAuth;
using Postern.MailAuth.Dkim;
using Postern.MailAuth.Dmarc;
using Postern.MailAuth.Dns;
using Postern.MailAuth.Spf;

namespace Postern.Diagnostics;

/// <summary>
/// The checks of a domain's mail records that `diag dns` and `diag self` share: reverse DNS of an
/// address, SPF (the record, its lookups, and whether it covers an address), a DKIM key record and
/// whether it is Postern's own, DMARC. Each adds its step to the report; <c>prefix</c> goes before
/// every step id (`diag self` checks several domains and names each: <c>example.com:spf.record</c>).
/// </summary>
internal static class DnsRecordChecks
{
    /// <summary>RFC 7208 §4.6.4: at most 10 terms that cause DNS queries, across includes and redirects.</summary>
    public const int SpfLookupLimit = 10;

    // ---- reverse DNS ----

    /// <summary>
    /// PTR of <paramref name="ip"/>, and whether a PTR name resolves back to it (forward-confirmed
    /// reverse DNS, FCrDNS). <paramref name="problem"/> is the status of a missing or unconfirmed PTR:
    /// fail for an address mail is sent from (receivers refuse or junk it), warn for one that only receives.
    /// <paramref name="expectedName"/>, when given, is the name the PTR should be (the HELO name).
    /// </summary>
    public static async Task PtrAsync(DiagContext ctx, IPAddress ip, string role, DiagStatus problem, string? expectedName, CancellationToken cancellationToken)
    {
        var id = $"ptr.{ip}".ToLowerInvariant();
        var title = $"reverse DNS of {ip} ({role})";
        var tried = $"PTR of {ip.GetArpaName().TrimEnd('.')}, then the addresses of each name, asking {ctx.DnsDescription}";
        var data = new JsonObject { ["ip"] = ip.ToString(), ["role"] = role };
        var ptr = await ctx.WaitAsync($"asking for the PTR of {ip}", ctx.Dns.PtrAsync(ip, cancellationToken));
        if (ptr.Status == DnsStatus.TempError)
        {
            ctx.Add(Unreachable(ctx, id, title, tried, data));
            return;
        }
        var suggested = expectedName ?? "your mail server's name";
        if (ptr.Records.Count == 0)
        {
            data["ptr"] = new JsonArray();
            data["confirmed"] = false;
            ctx.Add(new DiagStep(id, title, problem, tried, $"no PTR record ({(ptr.Status == DnsStatus.NxDomain ? "NXDOMAIN" : "no data")})", "ptr_missing",
                $"{ip} has no reverse DNS name: many receivers (Gmail, Microsoft, most spam filters) refuse or junk mail from an address without one",
                $"ask whoever gives you {ip} (the hosting or internet provider; it is set in their control panel, not in your zone) to set its PTR to {suggested}, and make {suggested} resolve to {ip}", data));
            return;
        }
        var names = ptr.Records.Take(10).Select(n => n.TrimEnd('.').ToLowerInvariant()).ToList();
        data["ptr"] = Array(names);
        var confirmed = new List<string>();
        var unanswered = new List<string>();
        var forward = new JsonObject();
        foreach (var name in names)
        {
            var addresses = await ctx.WaitAsync($"asking for the addresses of {name}", AddressesAsync(ctx, name, ip.AddressFamily, cancellationToken));
            forward[name] = Array(addresses.Records.Select(a => a.ToString()));
            if (addresses.Status == DnsStatus.TempError)
            {
                unanswered.Add(name);
            }
            if (addresses.Records.Contains(ip))
            {
                confirmed.Add(name);
            }
        }
        data["forward"] = forward;
        data["confirmed"] = confirmed.Count > 0;
        var saw = $"PTR {string.Join(", ", names)}; " + string.Join("; ", names.Select(n => unanswered.Contains(n) ? $"{n}: no answer" : $"{n} resolves to {Addresses(forward[n]!.AsArray())}"));
        if (confirmed.Count == 0 && unanswered.Count > 0)
        {
            ctx.Add(Unreachable(ctx, id, title, tried, data, saw));
            return;
        }
        if (confirmed.Count == 0)
        {
            ctx.Add(new DiagStep(id, title, problem, tried, saw, "ptr_mismatch",
                $"the reverse name of {ip} does not resolve back to it (no forward-confirmed reverse DNS): receivers that check it treat the name as forged",
                $"make {names[0]} resolve to {ip} ({names[0]}. IN {(ip.AddressFamily == AddressFamily.InterNetworkV6 ? "AAAA" : "A")} {ip}), or have the provider of {ip} set its PTR to {suggested}", data));
            return;
        }
        if (expectedName is not null && !confirmed.Contains(expectedName.TrimEnd('.'), StringComparer.OrdinalIgnoreCase))
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, saw, "ptr_not_hostname",
                $"{ip} is named {confirmed[0]}, but this server says {expectedName} in its greeting and EHLO: some receivers want the two to agree",
                $"have the provider of {ip} set its PTR to {expectedName}, or set Hostname to {confirmed[0]}", data));
            return;
        }
        ctx.Add(new DiagStep(id, title, DiagStatus.Pass, tried, $"{saw}: forward-confirmed", Data: data));
    }

    // ---- SPF ----

    /// <summary>
    /// The SPF record of <paramref name="domain"/>: exactly one (RFC 7208 §4.5), its syntax, its DNS
    /// lookups against the limit of 10, and the result for each of <paramref name="ips"/> (this
    /// server's sending addresses). <paramref name="mxAddresses"/> lets the advice say "add mx" when
    /// the sending address is one of the domain's MX hosts.
    /// </summary>
    public static async Task SpfAsync(DiagContext ctx, string domain, IReadOnlyList<IPAddress> ips, IReadOnlyCollection<IPAddress> mxAddresses, string prefix, CancellationToken cancellationToken)
    {
        var id = prefix + "spf.record";
        var title = $"SPF record of {domain}";
        var tried = $"TXT of {domain}, asking {ctx.DnsDescription}";
        var data = new JsonObject { ["domain"] = domain };
        var txt = await ctx.WaitAsync($"asking for the SPF record of {domain}", ctx.Dns.TxtAsync(domain, cancellationToken));
        if (txt.Status == DnsStatus.TempError)
        {
            ctx.Add(Unreachable(ctx, id, title, tried, data));
            return;
        }
        var records = txt.Records.Where(IsSpf).ToList();
        data["records"] = Array(records);
        if (records.Count == 0)
        {
            var suggested = SuggestedSpf(ips, mxAddresses);
            ctx.Add(new DiagStep(id, title, ips.Count > 0 ? DiagStatus.Fail : DiagStatus.Warn, tried,
                txt.Status == DnsStatus.NxDomain ? $"{domain} does not exist (NXDOMAIN)" : $"no TXT record starting v=spf1 ({txt.Records.Count} other TXT records)", "spf_missing",
                $"{domain} says nowhere which servers may send its mail (SPF none): Gmail, Microsoft and others junk or refuse mail that passes neither SPF nor DKIM",
                $"publish one TXT record: {domain}. IN TXT \"{suggested}\"", data));
            return;
        }
        if (records.Count > 1)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, $"{records.Count} SPF records: {string.Join(" | ", records.Select(r => $"\"{r}\""))}", "spf_multiple",
                $"RFC 7208 §4.5: with more than one v=spf1 record SPF is a permanent error for every sender, so no mail of {domain} passes SPF",
                $"keep a single record that merges them, and delete the others: {domain}. IN TXT \"{MergeSpf(records)}\"", data));
            return;
        }
        var record = records[0];
        data["record"] = record;
        // The record alone, with every other name answering "nothing": only its own syntax can fail.
        var alone = await new SpfEvaluator(new OneRecordDns(domain, record), "postern-diag").CheckHostAsync(IPAddress.Parse("192.0.2.1"), domain, $"postmaster@{domain}", domain, cancellationToken);
        if (alone.Result == AuthResult.PermError && alone.Reason.StartsWith("syntax error in the SPF record of ", StringComparison.Ordinal))
        {
            var error = alone.Reason[(alone.Reason.IndexOf(": ", StringComparison.Ordinal) + 2)..];
            data["error"] = error;
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, $"\"{record}\": {error}", "spf_syntax",
                $"a syntax error makes SPF a permanent error for every sender (RFC 7208 §4.6), so no mail of {domain} passes SPF",
                $"correct the record ({error}); terms are separated by single spaces, e.g. \"v=spf1 mx ip4:192.0.2.25 include:_spf.provider.example -all\"", data));
            return;
        }
        ctx.Add(new DiagStep(id, title, DiagStatus.Pass, tried, $"one SPF record: \"{record}\"", Data: data));

        await LookupsAsync(ctx, domain, record, prefix, cancellationToken);
        foreach (var ip in ips)
        {
            await CoversAsync(ctx, domain, record, ip, mxAddresses, prefix, cancellationToken);
        }
    }

    private static async Task LookupsAsync(DiagContext ctx, string domain, string record, string prefix, CancellationToken cancellationToken)
    {
        var id = prefix + "spf.lookups";
        var title = $"SPF DNS lookups of {domain}";
        var tried = $"counting the terms that cost a DNS lookup (include, a, mx, ptr, exists, redirect), following each include and redirect";
        var count = await ctx.WaitAsync($"following the includes of {domain}", DnsSpfLookups.CountAsync(ctx.Dns, domain, record, cancellationToken));
        var data = new JsonObject
        {
            ["lookups"] = count.Total,
            ["limit"] = SpfLookupLimit,
            ["terms"] = new JsonArray([.. count.ByTerm.Select(t => new JsonObject { ["term"] = t.Term, ["lookups"] = t.Lookups })]),
        };
        if (count.Problems.Count > 0)
        {
            data["problems"] = Array(count.Problems);
        }
        var byTerm = string.Join(", ", count.ByTerm.Select(t => $"{t.Term}: {t.Lookups}"));
        var saw = $"{count.Total} of at most {SpfLookupLimit}{(byTerm.Length == 0 ? "" : $" ({byTerm})")}";
        if (count.Total > SpfLookupLimit)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, saw, "spf_too_many_lookups",
                $"RFC 7208 §4.6.4: a receiver stops after {SpfLookupLimit} DNS-querying terms and the result is a permanent error, so mail of {domain} fails SPF wherever the evaluation gets that far",
                "remove the include: of services you no longer use, and replace a, mx and include: terms by the ip4:/ip6: ranges they stand for where those are stable, until at most 10 remain (an include counts the lookups inside it too)", data));
            return;
        }
        if (count.Problems.Count > 0)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, $"{saw}; {string.Join("; ", count.Problems)}", "spf_include_broken",
                $"an include or redirect names a domain without exactly one usable SPF record: when a receiver's evaluation reaches it, the result for {domain} is a permanent error",
                "correct or remove that include: (a provider's include name is on its help pages, e.g. include:_spf.google.com)", data));
            return;
        }
        ctx.Add(new DiagStep(id, title, DiagStatus.Pass, tried, saw, Data: data));
    }

    private static async Task CoversAsync(DiagContext ctx, string domain, string record, IPAddress ip, IReadOnlyCollection<IPAddress> mxAddresses, string prefix, CancellationToken cancellationToken)
    {
        var id = $"{prefix}spf.{ip}".ToLowerInvariant();
        var title = $"SPF of {domain} for {ip}";
        var tried = $"evaluating the SPF record of {domain} (RFC 7208 check_host) for mail from postmaster@{domain} sent by {ip}";
        var evaluator = new SpfEvaluator(ctx.Dns, ctx.HasConfiguration ? ctx.Options.Hostname : "postern-diag", ctx.Time);
        var outcome = await ctx.WaitAsync($"evaluating the SPF of {domain} for {ip}", evaluator.CheckHostAsync(ip, domain, $"postmaster@{domain}", ctx.HasConfiguration ? ctx.Options.Hostname : domain, cancellationToken));
        var result = outcome.Result.ToString().ToLowerInvariant();
        var data = new JsonObject { ["domain"] = domain, ["ip"] = ip.ToString(), ["result"] = result, ["reason"] = outcome.Reason };
        if (outcome.DecidingTerm is not null)
        {
            data["deciding_term"] = outcome.DecidingTerm;
        }
        var saw = $"{result}: {outcome.Reason}";
        var term = mxAddresses.Contains(ip) && !Terms(record).Any(t => t.TrimStart('+').Equals("mx", StringComparison.OrdinalIgnoreCase))
            ? "mx"
            : ip.AddressFamily == AddressFamily.InterNetworkV6 ? $"ip6:{ip}" : $"ip4:{ip}";
        var fix = $"add {term} to the record, before its all: {domain}. IN TXT \"{InsertSpfTerm(record, term)}\"";
        switch (outcome.Result)
        {
            case AuthResult.Pass:
                ctx.Add(new DiagStep(id, title, DiagStatus.Pass, tried, saw, Data: data));
                break;
            case AuthResult.Fail:
                ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, saw, "spf_fail",
                    $"the record does not name {ip} and ends in {outcome.DecidingTerm ?? "-all"}: receivers refuse or junk mail of {domain} sent from this server",
                    fix, data));
                break;
            case AuthResult.SoftFail:
                ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, saw, "spf_softfail",
                    $"the record does not name {ip} and ends in {outcome.DecidingTerm ?? "~all"}: receivers treat mail of {domain} from this server as suspect (often junk), and it does not count for DMARC",
                    fix, data));
                break;
            case AuthResult.Neutral:
                ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, saw, "spf_neutral",
                    $"the record says nothing definite about {ip} (neutral): it does not count for DMARC, and receivers give mail of {domain} from this server no credit",
                    fix, data));
                break;
            case AuthResult.TempError:
                ctx.Add(Unreachable(ctx, id, title, tried, data, saw));
                break;
            default:
                ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, saw, "spf_permerror",
                    $"the evaluation for {ip} ends in a permanent error: receivers count it as SPF fail, or as none",
                    "correct what the reason names (a broken include, more than 10 lookups, more than 2 names that do not exist)", data));
                break;
        }
    }

    /// <summary>RFC 7208 §4.5: a TXT record that starts "v=spf1" followed by a space or its end.</summary>
    public static bool IsSpf(string txt) =>
        txt.StartsWith("v=spf1", StringComparison.OrdinalIgnoreCase) && (txt.Length == 6 || txt[6] == ' ');

    /// <summary>The terms of a record after v=spf1.</summary>
    public static IEnumerable<string> Terms(string record) => record.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1);

    /// <summary>A record to start from: the MX hosts, and the sending addresses they do not cover.</summary>
    public static string SuggestedSpf(IReadOnlyList<IPAddress> ips, IReadOnlyCollection<IPAddress> mxAddresses)
    {
        var terms = new List<string> { "mx" };
        terms.AddRange(ips.Where(ip => !mxAddresses.Contains(ip)).Select(ip => ip.AddressFamily == AddressFamily.InterNetworkV6 ? $"ip6:{ip}" : $"ip4:{ip}"));
        return $"v=spf1 {string.Join(' ', terms)} -all";
    }

    /// <summary>The record with <paramref name="term"/> put before its all (or redirect=), or at the end.</summary>
    public static string InsertSpfTerm(string record, string term)
    {
        var terms = Terms(record).ToList();
        var at = terms.FindIndex(t => t.TrimStart('+', '-', '~', '?').Equals("all", StringComparison.OrdinalIgnoreCase)
            || t.StartsWith("redirect=", StringComparison.OrdinalIgnoreCase));
        terms.Insert(at < 0 ? terms.Count : at, term);
        return $"v=spf1 {string.Join(' ', terms)}";
    }

    /// <summary>Several records as one: every term once, in order, with the first record's all at the end.</summary>
    public static string MergeSpf(IReadOnlyList<string> records)
    {
        var terms = new List<string>();
        string? all = null;
        foreach (var t in records.SelectMany(Terms))
        {
            if (t.TrimStart('+', '-', '~', '?').Equals("all", StringComparison.OrdinalIgnoreCase))
            {
                all ??= t;
            }
            else if (!t.StartsWith("redirect=", StringComparison.OrdinalIgnoreCase) && !terms.Contains(t, StringComparer.OrdinalIgnoreCase))
            {
                terms.Add(t);
            }
        }
        terms.Add(all ?? "~all");
        return $"v=spf1 {string.Join(' ', terms)}";
    }

    // ---- DKIM ----

    /// <summary>
    /// The key record of <paramref name="selector"/> at <paramref name="domain"/>: there, parsed, its key
    /// type and size, and when <paramref name="own"/> is given, whether it is that key's public half.
    /// </summary>
    public static async Task DkimAsync(DiagContext ctx, string domain, string selector, DkimSigningKey? own, string prefix, CancellationToken cancellationToken)
    {
        var id = Id($"{prefix}dkim.{selector}");
        var title = $"DKIM key {selector} of {domain}";
        var name = DnsDkimKeyLocator.KeyName(domain, selector);
        var data = new JsonObject { ["selector"] = selector, ["domain"] = domain };
        if (own?.Path is { } path)
        {
            data["own_key"] = path;
        }
        if (name is null)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, $"forming the key name of selector {selector}", "not a DNS name", "dkim_selector_invalid",
                $"'{selector}' cannot be a DNS label (letters, digits, '-', '_', at most 63), so no key can be published for it",
                "sign with a selector of letters, digits and '-' (postern dkim keygen --selector NAME)", data));
            return;
        }
        data["name"] = name;
        var tried = $"TXT of {name}, asking {ctx.DnsDescription}";
        var publish = own is null
            ? $"publish the key record your signing software gives for selector {selector} at {name}"
            : $"publish Postern's key: {own.TxtRecord.ZoneFileLine}";
        var txt = await ctx.WaitAsync($"asking for the DKIM key {name}", ctx.Dns.TxtAsync(name, cancellationToken));
        if (txt.Status == DnsStatus.TempError)
        {
            ctx.Add(Unreachable(ctx, id, title, tried, data));
            return;
        }
        if (txt.Records.Count == 0)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, txt.Status == DnsStatus.NxDomain ? $"{name} does not exist (NXDOMAIN)" : "no TXT record", "dkim_missing",
                $"receivers find no key for s={selector}, so every signature with it fails (dkim=permerror) and cannot help DMARC",
                publish, data));
            return;
        }
        data["records"] = Array(txt.Records);
        DkimKeyRecord? key = null;
        string? error = null;
        foreach (var text in txt.Records)
        {
            key = DkimKeyRecord.Parse(text, out error);
            if (key is not null)
            {
                break;
            }
        }
        if (key is null)
        {
            data["error"] = error;
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, $"\"{Shorten(txt.Records[0])}\": {error}", "dkim_syntax",
                "the record is not a usable DKIM key, so every signature with this selector fails",
                own is null ? $"correct the record ({error}); it reads \"v=DKIM1; k=rsa; p=BASE64-PUBLIC-KEY\"" : publish, data));
            return;
        }
        var type = key.KeyType == DkimKeyType.Ed25519 ? "ed25519" : "rsa";
        data["key_type"] = type;
        data["key_bits"] = key.KeyBits;
        data["testing"] = key.Testing;
        var facts = key.Revoked ? "a revoked key (empty p=)" : $"{type} key of {key.KeyBits} bits{(key.Testing ? ", t=y (testing)" : "")}";
        if (own is not null)
        {
            var matches = !key.Revoked && DkimKeyRecord.Parse(own.TxtRecord.Value, out _) is { PublicKey: { } mine } && SameKey(mine, key.PublicKey!);
            data["matches_own_key"] = matches;
            if (!matches)
            {
                ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, $"{facts}; not the public half of Postern's key {own.Path} ({own.Algorithm}, {own.KeyBits} bits)", "dkim_key_mismatch",
                    $"Postern signs with {own.Path}, but {name} publishes another key: every signature Postern makes with s={selector} fails at receivers",
                    $"replace the record at {name} with the one for Postern's key: {own.TxtRecord.ZoneFileLine}", data));
                return;
            }
        }
        if (key.Revoked)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, facts, "dkim_revoked",
                $"the key of s={selector} is revoked: signatures with it fail",
                $"sign with another selector, or publish the current key at {name}", data));
            return;
        }
        if (txt.Records.Count > 1)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, $"{txt.Records.Count} TXT records at {name}; the first usable one: {facts}", "dkim_multiple",
                "RFC 6376 §3.6.2.2: with several records a receiver may use any one of them, so signatures verify at some receivers and fail at others",
                $"keep only one TXT record at {name}", data));
            return;
        }
        if (key.KeyType == DkimKeyType.Rsa && key.KeyBits < 1024)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, facts, "dkim_key_too_short",
                "RFC 8301 §3.2: receivers treat RSA keys under 1024 bits as no key at all",
                "make a 2048-bit key (postern dkim keygen --domain DOMAIN --selector NEW), publish it, and sign with it", data));
            return;
        }
        if (key.KeyType == DkimKeyType.Rsa && key.KeyBits < 2048)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, facts, "dkim_key_weak",
                "a 1024-bit RSA key is still accepted but considered weak (RFC 8301 recommends 2048); some receivers already score it down",
                "make a 2048-bit key under a new selector (postern dkim keygen --domain DOMAIN --selector NEW), publish it, then retire this one", data));
            return;
        }
        if (key.Testing)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, facts, "dkim_testing",
                "t=y says the domain is testing DKIM: receivers may ignore failures, and some ignore the signature",
                $"once signatures verify, remove t=y from the record at {name}", data));
            return;
        }
        ctx.Add(new DiagStep(id, title, DiagStatus.Pass, tried, own is null ? facts : $"{facts}; matches Postern's key {own.Path}", Data: data));
    }

    private static bool SameKey(AsymmetricKeyParameter a, AsymmetricKeyParameter b) => (a, b) switch
    {
        (RsaKeyParameters x, RsaKeyParameters y) => x.Modulus.Equals(y.Modulus) && x.Exponent.Equals(y.Exponent),
        (Ed25519PublicKeyParameters x, Ed25519PublicKeyParameters y) => x.GetEncoded().AsSpan().SequenceEqual(y.GetEncoded()),
        _ => false,
    };

    // ---- DMARC ----

    /// <summary>The DMARC record of <paramref name="domain"/> (or of its organizational domain), with its policy in words.</summary>
    public static async Task DmarcAsync(DiagContext ctx, string domain, string prefix, CancellationToken cancellationToken)
    {
        var id = prefix + "dmarc";
        var title = $"DMARC of {domain}";
        var evaluator = new DmarcEvaluator(ctx.Dns);
        var organizational = evaluator.PublicSuffixes.OrganizationalDomain(domain) ?? domain;
        var tried = $"TXT of _dmarc.{domain}{(organizational.Equals(domain, StringComparison.OrdinalIgnoreCase) ? "" : $", then of _dmarc.{organizational} (the organizational domain)")}, asking {ctx.DnsDescription}";
        var data = new JsonObject { ["domain"] = domain };
        DmarcDiscovery found;
        try
        {
            found = await ctx.WaitAsync($"asking for the DMARC record of {domain}", evaluator.DiscoverAsync(domain, cancellationToken));
        }
        catch (ArgumentException)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, $"'{domain}' is not a domain name", "dmarc_missing",
                "no DMARC record can be found for a name that is not a domain", "check the domain's spelling", data));
            return;
        }
        if (found.Status is not (DmarcRecordStatus.NotFound or DmarcRecordStatus.TempError))
        {
            data["record_domain"] = found.RecordDomain;
            data["inherited"] = found.AtOrganizationalDomain;
        }
        var starter = $"_dmarc.{domain}. IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@{domain}\"";
        switch (found.Status)
        {
            case DmarcRecordStatus.TempError:
                ctx.Add(Unreachable(ctx, id, title, tried, data));
                return;
            case DmarcRecordStatus.NotFound:
                ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, "no DMARC record", "dmarc_missing",
                    $"without DMARC, receivers apply no policy of yours to mail forged as {domain}, send you no reports, and Gmail and Yahoo require one of anyone who sends them much mail",
                    $"publish a starting record (reports only): {starter}; once the reports show all your mail passes, go to p=quarantine, then p=reject", data));
                return;
            case DmarcRecordStatus.Multiple:
                ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, $"several DMARC records at _dmarc.{found.RecordDomain}", "dmarc_multiple",
                    "RFC 7489 §6.6.3: with more than one record receivers apply no DMARC at all",
                    $"keep exactly one TXT record starting v=DMARC1 at _dmarc.{found.RecordDomain}", data));
                return;
        }
        var record = found.Record!;
        data["record"] = record.Text;
        data["policy"] = record.Policy is { } p ? p.ToString().ToLowerInvariant() : null;
        data["subdomain_policy"] = record.SubdomainPolicy is { } sp ? sp.ToString().ToLowerInvariant() : null;
        data["pct"] = record.Percent;
        data["rua"] = Array(record.AggregateReportUris.Select(u => u.Uri.ToString()));
        if (record.Problems.Count > 0)
        {
            data["problems"] = Array(record.Problems);
        }
        var where = found.AtOrganizationalDomain ? $"at _dmarc.{found.RecordDomain} (the organizational domain, which covers {domain})" : $"at _dmarc.{domain}";
        if (found.Status == DmarcRecordStatus.Invalid)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Fail, tried, $"\"{record.Text}\" {where}: {string.Join("; ", record.Problems)}", "dmarc_invalid",
                "RFC 7489 §6.6.3: a record without a valid p= (and without rua=) is ignored, as if there were none",
                $"correct it, e.g. {starter}", data));
            return;
        }
        var saw = $"\"{record.Text}\" {where}: {Explain(record, found.AtOrganizationalDomain)}";
        if (record.Problems.Count > 0)
        {
            ctx.Add(new DiagStep(id, title, DiagStatus.Warn, tried, saw, "dmarc_syntax",
                $"parts of the record are wrong and receivers use the defaults instead: {string.Join("; ", record.Problems)}",
                $"correct the record at _dmarc.{found.RecordDomain}", data));
            return;
        }
        ctx.Add(new DiagStep(id, title, DiagStatus.Pass, tried, saw, Data: data));
    }

    /// <summary>The record's policy in plain words.</summary>
    internal static string Explain(DmarcRecord record, bool inherited)
    {
        var policy = inherited ? record.SubdomainPolicy ?? record.Policy : record.Policy;
        var words = new List<string>
        {
            policy switch
            {
                DmarcPolicy.Reject => "mail that fails DMARC is refused (p=reject)",
                DmarcPolicy.Quarantine => "mail that fails DMARC goes to spam (p=quarantine)",
                _ => "mail that fails DMARC is delivered as usual, only reported (p=none: monitoring)",
            } + (inherited && record.SubdomainPolicy is not null ? ", by the sp= of the organizational domain" : ""),
        };
        if (record.Percent < 100 && policy != DmarcPolicy.None)
        {
            words.Add($"applied to {record.Percent}% of failing mail, the rest is treated one step softer (pct={record.Percent})");
        }
        if (!inherited)
        {
            words.Add(record.SubdomainPolicy is { } sp ? $"subdomains: {sp.ToString().ToLowerInvariant()} (sp=)" : "subdomains: the same");
        }
        if (record.DkimAlignment == AlignmentMode.Strict || record.SpfAlignment == AlignmentMode.Strict)
        {
            words.Add($"strict alignment for {string.Join(" and ", new[] { record.DkimAlignment == AlignmentMode.Strict ? "DKIM" : null, record.SpfAlignment == AlignmentMode.Strict ? "SPF" : null }.OfType<string>())}");
        }
        words.Add(record.AggregateReportUris.Count > 0
            ? $"reports to {string.Join(", ", record.AggregateReportUris.Select(u => u.Uri.ToString()))}"
            : "no rua=, so nobody receives reports of who sends as the domain");
        return string.Join("; ", words);
    }

    // ---- shared ----

    /// <summary>
    /// A DNS question that got no answer: the step's outcome is unknown, and that fails the check
    /// (receivers that get no answer defer the mail too; a run that checked nothing is not "all good").
    /// </summary>
    public static DiagStep Unreachable(DiagContext ctx, string id, string title, string tried, JsonObject data, string? saw = null) =>
        new(id, title, DiagStatus.Fail, tried, saw ?? $"no answer within {ctx.Timeout.TotalSeconds:0.#} s, or SERVFAIL", "dns_unreachable",
            "the DNS servers did not answer, so this could not be checked (receivers that get no answer either defer the mail or count it as an error)",
            "try again; if it persists, check that the domain's name servers answer (dig +trace), or ask another resolver with --dns", data);

    /// <summary>The A (or AAAA) records of a name, by address family.</summary>
    public static Task<DnsAnswer<IPAddress>> AddressesAsync(DiagContext ctx, string name, AddressFamily family, CancellationToken cancellationToken) =>
        family == AddressFamily.InterNetworkV6 ? ctx.Dns.AaaaAsync(name, cancellationToken) : ctx.Dns.AAsync(name, cancellationToken);

    /// <summary>Both the A and the AAAA records of a name; TempError when either failed and nothing was found.</summary>
    public static async Task<DnsAnswer<IPAddress>> AllAddressesAsync(DiagContext ctx, string name, CancellationToken cancellationToken)
    {
        // Both at once: a name without AAAA costs one timeout, not two.
        var askA = ctx.Dns.AAsync(name, cancellationToken);
        var askAaaa = ctx.Dns.AaaaAsync(name, cancellationToken);
        var (a, aaaa) = (await askA.ConfigureAwait(false), await askAaaa.ConfigureAwait(false));
        var all = a.Records.Concat(aaaa.Records).ToList();
        if (all.Count > 0)
        {
            return new DnsAnswer<IPAddress>(DnsStatus.Ok, all);
        }
        if (a.Status == DnsStatus.TempError || aaaa.Status == DnsStatus.TempError)
        {
            return DnsAnswer<IPAddress>.TempError;
        }
        return a.Status == DnsStatus.NxDomain ? DnsAnswer<IPAddress>.NxDomain : new DnsAnswer<IPAddress>(DnsStatus.Ok, []);
    }

    /// <summary>A step id from names that may hold anything: lower case, and '_' for what the schema does not allow.</summary>
    public static string Id(string s) => new([.. s.ToLowerInvariant().Select(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or ':' or '-' ? c : '_')]);

    public static JsonArray Array(IEnumerable<string> values) => new([.. values.Select(v => JsonValue.Create(v))]);

    private static string Addresses(JsonArray addresses) => addresses.Count == 0 ? "nothing" : string.Join(", ", addresses.Select(a => (string?)a));

    private static string Shorten(string s) => s.Length > 80 ? s[..80] + "…" : s;

    /// <summary>DNS that knows one TXT record and nothing else: to check a record's own syntax without asking anyone.</summary>
    private sealed class OneRecordDns(string domain, string record) : IMailAuthDns
    {
        public Task<DnsAnswer<string>> TxtAsync(string name, CancellationToken cancellationToken = default) =>
            Task.FromResult(name.TrimEnd('.').Equals(domain, StringComparison.OrdinalIgnoreCase) ? DnsAnswer<string>.Of(record) : DnsAnswer<string>.NxDomain);

        public Task<DnsAnswer<IPAddress>> AAsync(string name, CancellationToken cancellationToken = default) => Task.FromResult(DnsAnswer<IPAddress>.NxDomain);

        public Task<DnsAnswer<IPAddress>> AaaaAsync(string name, CancellationToken cancellationToken = default) => Task.FromResult(DnsAnswer<IPAddress>.NxDomain);

        public Task<DnsAnswer<MxRecord>> MxAsync(string name, CancellationToken cancellationToken = default) => Task.FromResult(DnsAnswer<MxRecord>.NxDomain);

        public Task<DnsAnswer<string>> PtrAsync(IPAddress address, CancellationToken cancellationToken = default) => Task.FromResult(DnsAnswer<string>.NxDomain);
    }
}

/// <summary>This server's sending addresses, as `diag dns` and `diag self` are told them.</summary>
internal static class SendingAddresses
{
    /// <summary>From --ip (a comma-separated list); empty when not given.</summary>
    /// <exception cref="Invocation.UsageException">An entry is not an IP address.</exception>
    public static (List<IPAddress> Addresses, string Source) Given(Invocation.Arguments args)
    {
        var given = args.Value("--ip");
        if (given is null)
        {
            return ([], "");
        }
        var ips = new List<IPAddress>();
        foreach (var s in given.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            ips.Add(IPAddress.TryParse(s, out var ip) ? Canonical(ip) : throw new Invocation.UsageException($"--ip {s}: an IPv4 or IPv6 address"));
        }
        return ips.Count == 0 ? throw new Invocation.UsageException("--ip: at least one address") : (ips.Distinct().ToList(), "--ip");
    }

    /// <summary>Delivery.BindAddresses, the addresses outgoing connections are made from.</summary>
    public static (List<IPAddress> Addresses, string Source) Configured(Server.Configuration.PosternOptions options) =>
        options.Delivery.BindAddresses.Count == 0
            ? ([], "")
            : (options.Delivery.BindAddresses.Select(a => IPAddress.TryParse(a, out var ip) ? Canonical(ip) : null).OfType<IPAddress>().ToList(), "Delivery.BindAddresses");

    /// <summary>The info step saying which addresses are checked, and where they came from.</summary>
    public static void Report(DiagContext ctx, IReadOnlyList<IPAddress> ips, string source, string tried, string unknownAdvice)
    {
        var data = new JsonObject { ["addresses"] = DnsRecordChecks.Array(ips.Select(i => i.ToString())), ["source"] = source.Length == 0 ? null : source };
        ctx.Add(new DiagStep("sending_ip", "this server's sending address", DiagStatus.Info, tried,
            ips.Count == 0
                ? $"unknown, so its reverse DNS and SPF are not checked: {unknownAdvice}"
                : $"{string.Join(", ", ips)} (from {source})",
            Data: data));
    }

    /// <summary>An IPv4-mapped IPv6 address as IPv4, without a scope id.</summary>
    public static IPAddress Canonical(IPAddress ip) => ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : new IPAddress(ip.GetAddressBytes());
}

/// <summary>Postern's own DKIM keys (DATA/dkim), read through the key store.</summary>
internal static class OwnKeys
{
    /// <summary>The key store of the configuration; null, with a warning step, when it cannot be read.</summary>
    public static DkimKeyStore? Load(DiagContext ctx, string prefix)
    {
        var folder = Path.Combine(ctx.Options.DataDirectory, DkimKeyStore.FolderName);
        try
        {
            return DkimKeyStore.Load(folder);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException)
        {
            ctx.Add(new DiagStep(prefix + "dkim.store", "Postern's DKIM keys", DiagStatus.Warn, $"reading the keys in {folder}", e.Message, "dkim_store_unreadable",
                "Postern's own keys could not be read, so they are not compared with what is published",
                e is UnauthorizedAccessException ? "run the check as the user the server runs as (the keys are readable by it only)" : "correct or remove the file named (the server refuses it too)",
                new JsonObject { ["folder"] = folder }));
            return null;
        }
    }
}
