using System.Net;
using System.Text.Json.Nodes;
using Postern.Invocation;
using Postern.MailAuth.Dns;
using Postern.Server.Limits;

namespace Postern.Diagnostics;

/// <summary>
/// `postern diag dnsbl IP [--zones z1,z2]`: is the address on DNS blocklists (RFC 5782)? Each list
/// is asked the way receivers ask it; a listing is explained by its return code where the list's
/// codes are known, with the list's own TXT reason and where to ask for removal. Without --zones:
/// the configured Dnsbl.Lists, else the lists receivers use most.
/// </summary>
public sealed class DnsblCheck : IDiagVerb
{
    /// <summary>Asked when neither --zones nor Dnsbl.Lists names any.</summary>
    public static IReadOnlyList<string> DefaultZones { get; } = ["zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org", "psbl.surriel.com"];

    public string Name => "dnsbl";

    public string Usage => "diag dnsbl IP [--zones ZONE,...]";

    public string Summary => "is the address blocklisted, why, and where to ask for removal";

    public IReadOnlyList<string> Options => ["--zones"];

    public string Target(Arguments args)
    {
        if (args.Positional.Count != 1 || !PortCheck.IsIpLiteral(args.Positional[0], out _))
        {
            throw new UsageException($"{Usage}: one IPv4 or IPv6 address");
        }
        return args.Positional[0];
    }

    public async Task RunAsync(DiagContext ctx, Arguments args, CancellationToken cancellationToken)
    {
        var ip = IPAddress.Parse(args.Positional[0]);
        var zones = args.Value("--zones") is { } given
            ? given.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList()
            : ctx.Options.Dnsbl.Lists.Count > 0
                ? ctx.Options.Dnsbl.Lists.Select(l => l.Zone).ToList()
                : [.. DefaultZones];
        if (zones.Count == 0)
        {
            throw new UsageException("--zones: at least one zone");
        }
        // Ask every list at once; report in the order given.
        var lookups = zones.Select(z => LookUpAsync(ctx, ip, z, cancellationToken)).ToList();
        await ctx.WaitAsync($"asking {zones.Count} blocklists about {ip}", Task.WhenAll(lookups));
        foreach (var step in lookups.Select(l => l.Result))
        {
            ctx.Add(step);
        }
    }

    private static async Task<DiagStep> LookUpAsync(DiagContext ctx, IPAddress ip, string zone, CancellationToken cancellationToken)
    {
        zone = zone.TrimEnd('.').ToLowerInvariant();
        var name = DnsList.QueryName(ip, zone);
        var id = $"dnsbl.{zone}";
        var title = $"blocklist {zone}";
        var tried = $"A and TXT of {name}, asking {ctx.DnsDescription}";
        var data = new JsonObject { ["zone"] = zone, ["query"] = name };
        var answer = await ctx.Dns.AAsync(name, cancellationToken).ConfigureAwait(false);
        if (answer.Status == DnsStatus.NxDomain || (answer.Status == DnsStatus.Ok && answer.Records.Count == 0))
        {
            data["listed"] = false;
            return new DiagStep(id, title, DiagStatus.Pass, tried, $"not listed ({(answer.Status == DnsStatus.NxDomain ? "NXDOMAIN" : "no A record")})", Data: data);
        }
        if (answer.Status != DnsStatus.Ok)
        {
            return new DiagStep(id, title, DiagStatus.Warn, tried, $"no answer within {ctx.Timeout.TotalSeconds:0.#} s, or SERVFAIL", "dnsbl_unreachable",
                $"{zone} did not answer, so the listing is unknown", "try again later, or ask with a resolver of your own (--dns, Dns.Servers): some lists refuse public resolvers", data);
        }
        var verdict = new DnsList(zone, 1, []).Classify(answer.Records);
        if (verdict is ListAnswer.Failed failed)
        {
            data["codes"] = new JsonArray([.. answer.Records.Select(a => JsonValue.Create(a.ToString()))]);
            return new DiagStep(id, title, DiagStatus.Warn, tried, failed.Reason, "dnsbl_refused",
                "the list did not give a usable answer, so the listing is unknown",
                "use a resolver of your own for blocklist queries (--dns here, Dns.Servers for the server): public resolvers are refused by most lists", data);
        }
        var codes = ((ListAnswer.Listed)verdict).Codes;
        var txt = await ctx.Dns.TxtAsync(name, cancellationToken).ConfigureAwait(false);
        var reason = txt.Status == DnsStatus.Ok ? string.Join(" ", txt.Records) : null;
        data["listed"] = true;
        data["codes"] = new JsonArray([.. codes.Select(a => JsonValue.Create(a.ToString()))]);
        if (reason is not null)
        {
            data["reason"] = reason;
        }
        var meaning = string.Join("; ", codes.Select(c => $"{c}: {Explain(zone, c)}"));
        var (cause, fix) = Advice(zone, codes, ip);
        data["removal"] = Removal(zone);
        return new DiagStep(id, title, DiagStatus.Fail, tried,
            $"LISTED, {meaning}{(reason is null ? "" : $"; the list says: \"{reason}\"")}", codes.Any(IsPolicyListing(zone)) ? "dnsbl_policy_listed" : "dnsbl_listed",
            cause, fix, data);
    }

    /// <summary>Known return codes (the lists' own documentation).</summary>
    internal static string Explain(string zone, IPAddress code)
    {
        var last = code.GetAddressBytes()[3];
        if (zone.EndsWith("spamhaus.org", StringComparison.Ordinal) || zone.EndsWith("spamhaus.net", StringComparison.Ordinal))
        {
            return last switch
            {
                2 => "SBL, a known spam source or spam operation",
                3 => "SBL CSS, snowshoe spam (many addresses sending low volumes)",
                4 or 5 or 6 or 7 => "XBL, the address sent traffic of a hijacked or infected machine",
                9 => "SBL DROP, a hijacked or criminal network",
                10 => "PBL (set by the ISP), an end-user address that should not send mail directly",
                11 => "PBL (set by Spamhaus), an end-user address that should not send mail directly",
                _ => "listed (a code this list documents elsewhere)",
            };
        }
        return zone switch
        {
            "bl.spamcop.net" => "SpamCop, reported by recipients of spam from this address in the last days",
            "b.barracudacentral.org" => "Barracuda reputation, poor sending reputation seen by Barracuda's customers",
            "psbl.surriel.com" => "PSBL, spam from this address hit its spam traps",
            _ => "listed",
        };
    }

    private static Func<IPAddress, bool> IsPolicyListing(string zone) =>
        code => zone.Contains("spamhaus", StringComparison.Ordinal) && code.GetAddressBytes()[3] is 10 or 11;

    private static (string Cause, string Fix) Advice(string zone, IReadOnlyList<IPAddress> codes, IPAddress ip)
    {
        if (codes.All(IsPolicyListing(zone)))
        {
            return ($"{ip} is in a range its provider marks as end-user (dynamic or residential): receivers that use {zone} refuse mail sent from it directly",
                "send through your provider's smarthost (Relay.Smarthost), or ask the provider for a static address with a PTR name and have it removed from the PBL");
        }
        return ($"receivers that use {zone} refuse or junk mail from {ip}",
            $"find why the address sent what the list saw (a compromised account or web form, an open relay: run `postern diag relay`, an infected machine behind the same address), stop it, then ask for removal: {Removal(zone)}");
    }

    /// <summary>Where each known list takes removal requests.</summary>
    internal static string Removal(string zone) => zone switch
    {
        _ when zone.Contains("spamhaus", StringComparison.Ordinal) => "https://check.spamhaus.org/",
        "bl.spamcop.net" => "https://www.spamcop.net/bl.shtml (listings expire by themselves about a day after the spam stops)",
        "b.barracudacentral.org" => "https://www.barracudacentral.org/rbl/removal-request",
        "psbl.surriel.com" => "https://psbl.org/remove",
        _ => $"the web site of the list's operator (the zone {zone}; its TXT answer often names the page)",
    };
}
