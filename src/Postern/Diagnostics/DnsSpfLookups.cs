using Postern.MailAuth.Dns;

namespace Postern.Diagnostics;

/// <summary>
/// Counts the DNS lookups an SPF record costs (RFC 7208 §4.6.4): each include, a, mx, ptr, exists
/// and redirect term, across every include and redirect it leads to, whichever address asks. A
/// receiver's evaluation stops at the first term that matches, so for one address it may stay under
/// the limit; but the record must stay under it for every address, which is what this counts. The
/// limits on the addresses one mx or ptr looks up, and on void lookups, are not counted here: the
/// evaluation of the record for the sending address reports them.
/// </summary>
internal static class DnsSpfLookups
{
    // Deeper than 10 the limit is exceeded anyway; this bounds a loop of includes.
    private const int MaxDepth = 11;

    // Records fetched in all: includes that fan out (each naming the same few several times) would
    // otherwise cost queries exponential in the depth. Past this the limit of 10 is long exceeded.
    private const int MaxFetches = 40;

    private sealed class Budget
    {
        public int Left = MaxFetches;
        public bool Exhausted;
    }

    /// <summary>The total, the lookups behind each top-level term that costs any, and what is wrong on the way.</summary>
    public sealed record Count(int Total, IReadOnlyList<(string Term, int Lookups)> ByTerm, IReadOnlyList<string> Problems);

    public static async Task<Count> CountAsync(IMailAuthDns dns, string domain, string record, CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        var byTerm = new List<(string, int)>();
        var total = 0;
        var budget = new Budget();
        foreach (var (term, target) in Costly(record))
        {
            var lookups = 1 + (target is null ? 0 : await FollowAsync(dns, target, term, [domain.ToLowerInvariant()], 1, problems, budget, cancellationToken).ConfigureAwait(false));
            byTerm.Add((term, lookups));
            total += lookups;
        }
        return new Count(total, byTerm, problems);
    }

    // The lookups inside the record of an include or redirect target.
    private static async Task<int> FollowAsync(IMailAuthDns dns, string target, string term, HashSet<string> path, int depth, List<string> problems, Budget budget, CancellationToken cancellationToken)
    {
        var name = target.TrimEnd('.').ToLowerInvariant();
        if (depth >= MaxDepth || path.Contains(name))
        {
            problems.Add($"{term} leads back to {name} (a loop)");
            return 0;
        }
        if (budget.Left-- <= 0)
        {
            if (!budget.Exhausted)
            {
                budget.Exhausted = true;
                problems.Add($"more than {MaxFetches} records behind the includes: counting stopped there, far past the limit of 10");
            }
            return 0;
        }
        var txt = await dns.TxtAsync(name, cancellationToken).ConfigureAwait(false);
        if (txt.Status == DnsStatus.TempError)
        {
            problems.Add($"{term}: no answer for the TXT of {name}");
            return 0;
        }
        var records = txt.Records.Where(DnsRecordChecks.IsSpf).ToList();
        if (records.Count != 1)
        {
            problems.Add(records.Count == 0
                ? $"{term}: {name} has no SPF record{(txt.Status == DnsStatus.NxDomain ? " (it does not exist)" : "")}"
                : $"{term}: {name} has {records.Count} SPF records");
            return 0;
        }
        var inner = 0;
        path = [.. path, name];
        foreach (var (t, next) in Costly(records[0]))
        {
            inner += 1 + (next is null ? 0 : await FollowAsync(dns, next, $"{term} > {t}", path, depth + 1, problems, budget, cancellationToken).ConfigureAwait(false));
        }
        return inner;
    }

    /// <summary>
    /// The terms of a record that cost a lookup, with the domain to follow for include and redirect
    /// (null for the others, and for a target with macros, which depends on the sender).
    /// RFC 7208 §6.1: redirect= is ignored when the record has an all.
    /// </summary>
    private static IEnumerable<(string Term, string? Target)> Costly(string record)
    {
        var terms = DnsRecordChecks.Terms(record).ToList();
        var hasAll = terms.Any(t => t.TrimStart('+', '-', '~', '?').Equals("all", StringComparison.OrdinalIgnoreCase));
        foreach (var term in terms)
        {
            var body = term.TrimStart('+', '-', '~', '?');
            var end = body.IndexOfAny([':', '/', '=']);
            var name = (end < 0 ? body : body[..end]).ToLowerInvariant();
            var argument = end < 0 ? null : body[(end + 1)..];
            var isModifier = end >= 0 && body[end] == '=';
            if (isModifier)
            {
                if (name == "redirect" && !hasAll)
                {
                    yield return (term, Followable(argument));
                }
                continue;
            }
            switch (name)
            {
                case "include":
                    yield return (term, Followable(argument));
                    break;
                case "a" or "mx" or "ptr" or "exists":
                    yield return (term, null);
                    break;
            }
        }
    }

    private static string? Followable(string? target) => string.IsNullOrEmpty(target) || target.Contains('%') ? null : target;
}
