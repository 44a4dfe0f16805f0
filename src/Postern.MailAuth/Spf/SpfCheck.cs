using System.Net;
using System.Net.Sockets;
using Postern.MailAuth.Dns;

namespace Postern.MailAuth.Spf;

/// <summary>How one check_host() evaluation (or a nested one, for include and redirect) ended.</summary>
internal readonly record struct SpfVerdict(
    AuthResult Result,
    string Reason,
    string? Domain = null,
    string? Record = null,
    string? Term = null,
    string? Explanation = null);

/// <summary>
/// One run of check_host() (RFC 7208 §4) with its nested include and redirect evaluations: it owns the
/// counters the limits of RFC 7208 §4.6.4 apply to across the whole run, and the time budget.
/// Used once and dropped.
/// </summary>
internal sealed class SpfCheck
{
    /// <summary>RFC 7208 §4.6.4: at most 10 terms that cause DNS queries (include, a, mx, ptr, exists, redirect).</summary>
    public const int MaxDnsTerms = 10;

    /// <summary>RFC 7208 §4.6.4: at most 2 "void lookups" (NXDOMAIN or no answer); the RECOMMENDED default.</summary>
    public const int MaxVoidLookups = 2;

    /// <summary>RFC 7208 §4.6.4: at most 10 address lookups for the hosts of one mx, or the names of one ptr.</summary>
    public const int MaxAddressLookups = 10;

    private readonly IMailAuthDns _dns;
    private readonly TimeProvider _time;
    private readonly TimeSpan _timeLimit;
    private readonly long _started;
    private readonly CancellationToken _token;
    private readonly CancellationToken _callerToken;
    private readonly SpfMacroValues _values;
    private List<string>? _validatedNames;

    public SpfCheck(IMailAuthDns dns, SpfMacroValues values, TimeProvider time, TimeSpan timeLimit, CancellationToken token, CancellationToken callerToken)
    {
        _dns = dns;
        _values = values;
        _time = time;
        _timeLimit = timeLimit;
        _started = time.GetTimestamp();
        _token = token;
        _callerToken = callerToken;
    }

    /// <summary>DNS-querying terms evaluated so far.</summary>
    public int DnsTerms { get; private set; }

    /// <summary>Void lookups so far.</summary>
    public int VoidLookups { get; private set; }

    /// <summary>Whether the time budget ran out (RFC 7208 §4.6.4: then the result SHOULD be temperror).</summary>
    public bool TimedOut { get; private set; }

    private bool IsIPv4 => _values.Ip.AddressFamily == AddressFamily.InterNetwork;

    /// <summary>Evaluates the policy of <paramref name="domain"/> (already a valid name), with the explanation for fail.</summary>
    public async Task<SpfVerdict> RunAsync(string domain)
    {
        var verdict = await CheckHostAsync(domain, explain: true).ConfigureAwait(false);
        return TimedOut
            ? new SpfVerdict(AuthResult.TempError, $"the SPF evaluation took longer than {_timeLimit.TotalSeconds:0} s", verdict.Domain, verdict.Record)
            : verdict;
    }

    // explain: whether an exp= of the deciding record is used. RFC 7208 §6.2: not from an included
    // record; and after redirect=, the exp= of the target record, not of the one that redirected.
    private async Task<SpfVerdict> CheckHostAsync(string domain, bool explain)
    {
        // RFC 7208 §4.4: TXT only (the SPF RR type is gone); a DNS error is temperror.
        var txt = await AskAsync(t => _dns.TxtAsync(domain, t)).ConfigureAwait(false);
        if (txt.Status == DnsStatus.TempError)
        {
            return new SpfVerdict(AuthResult.TempError, $"DNS error looking up the TXT records of {P(domain)}");
        }
        // RFC 7208 §4.5: exactly one record starting "v=spf1"; none is "none", several is permerror.
        var records = txt.Records.Where(SpfRecord.IsSpfRecord).ToList();
        if (records.Count == 0)
        {
            return new SpfVerdict(AuthResult.None, txt.Status == DnsStatus.NxDomain ? $"{P(domain)} does not exist" : $"{P(domain)} has no SPF record");
        }
        if (records.Count > 1)
        {
            return new SpfVerdict(AuthResult.PermError, $"{P(domain)} has {records.Count} SPF records", domain);
        }
        var text = records[0];
        if (!SpfRecord.TryParse(text, out var record, out var error))
        {
            return new SpfVerdict(AuthResult.PermError, $"syntax error in the SPF record of {P(domain)}: {error}", domain, text);
        }
        var values = _values with { Domain = domain };
        foreach (var directive in record.Directives)
        {
            var match = await MatchAsync(directive, values).ConfigureAwait(false);
            if (match.Stop is { } stop)
            {
                return stop with { Domain = domain, Record = text, Term = directive.Text };
            }
            if (!match.Matched)
            {
                continue;
            }
            var reason = $"'{directive.Text}' matched in the SPF record of {P(domain)}" + (match.Detail is null ? "" : $" ({match.Detail})");
            var explanation = directive.Qualifier == AuthResult.Fail && explain
                ? await ExplainAsync(record, values).ConfigureAwait(false)
                : null;
            return new SpfVerdict(directive.Qualifier, reason, domain, text, directive.Text, explanation);
        }
        // RFC 7208 §6.1: redirect= applies only when no mechanism matched; a record with "all" never
        // gets here, which is how "redirect is ignored when there is an all mechanism" (§5.1) holds.
        if (record.Redirect is { } redirect)
        {
            if (!CountDnsTerm())
            {
                return TooManyDnsTerms() with { Domain = domain, Record = text };
            }
            var (target, stop) = await TargetAsync(redirect, values).ConfigureAwait(false);
            if (stop is not null)
            {
                return stop.Value with { Domain = domain, Record = text };
            }
            if (target is null)
            {
                return new SpfVerdict(AuthResult.PermError, $"the redirect= of {P(domain)} names no valid domain", domain, text);
            }
            var inner = await CheckHostAsync(target, explain).ConfigureAwait(false);
            // RFC 7208 §6.1: a redirect to a domain without an SPF record is permerror, not none.
            return inner.Result == AuthResult.None
                ? new SpfVerdict(AuthResult.PermError, $"redirect={P(target)} from {P(domain)}: {inner.Reason}", domain, text)
                : inner with { Reason = $"{inner.Reason}, by redirect from {P(domain)}" };
        }
        // RFC 7208 §4.7: nothing matched and no redirect: neutral.
        return new SpfVerdict(AuthResult.Neutral, $"no mechanism matched in the SPF record of {P(domain)}", domain, text);
    }

    private async Task<DirectiveMatch> MatchAsync(SpfDirective directive, SpfMacroValues values)
    {
        if (directive.QueriesDns && !CountDnsTerm())
        {
            return DirectiveMatch.Halt(TooManyDnsTerms());
        }
        string? target = values.Domain;
        if (directive.DomainSpec is { } spec)
        {
            var (expanded, stop) = await TargetAsync(spec, values).ConfigureAwait(false);
            if (stop is not null)
            {
                return DirectiveMatch.Halt(stop.Value);
            }
            target = expanded;
        }
        switch (directive.Mechanism)
        {
            case SpfMechanism.All:
                return DirectiveMatch.Yes;
            case SpfMechanism.Ip4:
                return DirectiveMatch.Of(InNetwork(_values.Ip, directive.Network!, directive.Ip4Prefix));
            case SpfMechanism.Ip6:
                // RFC 7208 §5: an IPv4-mapped IPv6 client is IPv4 (the evaluator has mapped it already), so
                // an IPv4 client matches no ip6 network, except one inside ::ffff:0:0/96 (see InNetwork).
                return DirectiveMatch.Of(InNetwork(_values.Ip, directive.Network!, directive.Ip6Prefix));
            case SpfMechanism.Include:
                return target is null
                    ? DirectiveMatch.Halt(new SpfVerdict(AuthResult.PermError, $"'{directive.Text}' names no valid domain"))
                    : await IncludeAsync(target).ConfigureAwait(false);
            case SpfMechanism.A:
                return target is null ? DirectiveMatch.No : await AddressMatchAsync(target, directive).ConfigureAwait(false);
            case SpfMechanism.Mx:
                return target is null ? DirectiveMatch.No : await MxMatchAsync(target, directive).ConfigureAwait(false);
            case SpfMechanism.Ptr:
                return target is null ? DirectiveMatch.No : await PtrMatchAsync(target).ConfigureAwait(false);
            case SpfMechanism.Exists:
                return target is null ? DirectiveMatch.No : await ExistsAsync(target).ConfigureAwait(false);
            default:
                throw new InvalidOperationException($"mechanism {directive.Mechanism}");
        }
    }

    // RFC 7208 §5.2: the include result table.
    private async Task<DirectiveMatch> IncludeAsync(string target)
    {
        var inner = await CheckHostAsync(target, explain: false).ConfigureAwait(false);
        return inner.Result switch
        {
            AuthResult.Pass => DirectiveMatch.Because(inner.Reason),
            AuthResult.Fail or AuthResult.SoftFail or AuthResult.Neutral => DirectiveMatch.No,
            AuthResult.TempError => DirectiveMatch.Halt(new SpfVerdict(AuthResult.TempError, $"include:{P(target)}: {inner.Reason}")),
            _ => DirectiveMatch.Halt(new SpfVerdict(AuthResult.PermError, $"include:{P(target)}: {inner.Reason}")),
        };
    }

    // RFC 7208 §5.3: the A (or AAAA, for an IPv6 client) records of the target, within the CIDR length.
    private async Task<DirectiveMatch> AddressMatchAsync(string target, SpfDirective directive)
    {
        var answer = await AddressesAsync(target).ConfigureAwait(false);
        if (answer.Status == DnsStatus.TempError)
        {
            return DirectiveMatch.Halt(new SpfVerdict(AuthResult.TempError, $"DNS error looking up the addresses of {P(target)}"));
        }
        if (IsVoid(answer))
        {
            return CountVoid() ? DirectiveMatch.No : DirectiveMatch.Halt(TooManyVoidLookups());
        }
        return DirectiveMatch.Of(answer.Records.Any(a => InNetwork(_values.Ip, a, Prefix(directive))));
    }

    // RFC 7208 §5.4: the addresses of the MX hosts of the target, no implicit MX (§5.4/4), at most 10
    // hosts looked up; needing an 11th is permerror (§4.6.4).
    private async Task<DirectiveMatch> MxMatchAsync(string target, SpfDirective directive)
    {
        var mx = await AskAsync(t => _dns.MxAsync(target, t)).ConfigureAwait(false);
        if (mx.Status == DnsStatus.TempError)
        {
            return DirectiveMatch.Halt(new SpfVerdict(AuthResult.TempError, $"DNS error looking up the MX records of {P(target)}"));
        }
        if (IsVoid(mx))
        {
            return CountVoid() ? DirectiveMatch.No : DirectiveMatch.Halt(TooManyVoidLookups());
        }
        var looked = 0;
        // A null MX (RFC 7505, exchange ".") names no host.
        foreach (var host in mx.Records.OrderBy(r => r.Preference).Select(r => r.Exchange.TrimEnd('.')).Where(h => h.Length > 0))
        {
            if (++looked > MaxAddressLookups)
            {
                return DirectiveMatch.Halt(new SpfVerdict(AuthResult.PermError, $"{P(target)} has more than {MaxAddressLookups} MX hosts to look up"));
            }
            if (SpfDomainName.ToQueryName(host) is not { } name)
            {
                continue;
            }
            var answer = await AddressesAsync(name).ConfigureAwait(false);
            if (answer.Status == DnsStatus.TempError)
            {
                return DirectiveMatch.Halt(new SpfVerdict(AuthResult.TempError, $"DNS error looking up the addresses of MX host {P(name)}"));
            }
            if (answer.Records.Any(a => InNetwork(_values.Ip, a, Prefix(directive))))
            {
                return DirectiveMatch.Because($"MX host {P(name)}");
            }
        }
        return DirectiveMatch.No;
    }

    // RFC 7208 §5.5: a validated name of the client that is the target or under it. A DNS error on the
    // PTR lookup is no match; one on an address lookup skips that name; only the first 10 names count.
    // Names outside the target are not validated: they could not match anyway.
    private async Task<DirectiveMatch> PtrMatchAsync(string target)
    {
        var ptr = await AskAsync(t => _dns.PtrAsync(_values.Ip, t)).ConfigureAwait(false);
        if (ptr.Status == DnsStatus.TempError)
        {
            return DirectiveMatch.No;
        }
        if (IsVoid(ptr))
        {
            return CountVoid() ? DirectiveMatch.No : DirectiveMatch.Halt(TooManyVoidLookups());
        }
        foreach (var name in ptr.Records.Take(MaxAddressLookups))
        {
            if (SpfDomainName.IsSameOrSubdomain(name, target) && await IsValidatedAsync(name).ConfigureAwait(false))
            {
                return DirectiveMatch.Because($"validated name {P(name.TrimEnd('.'))}");
            }
        }
        return DirectiveMatch.No;
    }

    // RFC 7208 §5.7: an A lookup, whatever the client's address family.
    private async Task<DirectiveMatch> ExistsAsync(string target)
    {
        var answer = await AskAsync(t => _dns.AAsync(target, t)).ConfigureAwait(false);
        if (answer.Status == DnsStatus.TempError)
        {
            return DirectiveMatch.Halt(new SpfVerdict(AuthResult.TempError, $"DNS error looking up {P(target)}"));
        }
        if (IsVoid(answer))
        {
            return CountVoid() ? DirectiveMatch.No : DirectiveMatch.Halt(TooManyVoidLookups());
        }
        return DirectiveMatch.Yes;
    }

    // Expands a domain-spec into the name to query: null when no query can be made of it, which the
    // mechanisms treat as a name that does not exist (RFC 7208 §4.3, §4.8). %{p} costs a DNS term.
    private async Task<(string? Name, SpfVerdict? Stop)> TargetAsync(SpfMacroString spec, SpfMacroValues values)
    {
        if (spec.UsesValidatedName)
        {
            if (_validatedNames is null && !CountDnsTerm())
            {
                return (null, TooManyDnsTerms());
            }
            values = values with { ValidatedName = await ValidatedNameAsync(values.Domain).ConfigureAwait(false) };
        }
        return (SpfDomainName.ToQueryName(spec.Expand(values)), null);
    }

    // RFC 7208 §6.2: any problem with the explanation (bad name, DNS error, not exactly one TXT record,
    // a syntax error or non-ASCII in the text) means no exp= at all; these lookups are outside the limits.
    private async Task<string?> ExplainAsync(SpfRecord record, SpfMacroValues values)
    {
        if (record.Explanation is not { } spec)
        {
            return null;
        }
        if (spec.UsesValidatedName)
        {
            values = values with { ValidatedName = await ValidatedNameAsync(values.Domain).ConfigureAwait(false) };
        }
        if (SpfDomainName.ToQueryName(spec.Expand(values)) is not { } name)
        {
            return null;
        }
        var txt = await AskAsync(t => _dns.TxtAsync(name, t)).ConfigureAwait(false);
        if (txt.Status != DnsStatus.Ok || txt.Records.Count != 1
            || !SpfMacroString.TryParse(txt.Records[0], explanation: true, out var text, out _))
        {
            return null;
        }
        if (text.UsesValidatedName)
        {
            values = values with { ValidatedName = await ValidatedNameAsync(values.Domain).ConfigureAwait(false) };
        }
        return text.Expand(values);
    }

    // RFC 7208 §7.3, %{p}: the domain itself if validated, else a validated subdomain of it, else any
    // validated name, else "unknown". The names are found once per check.
    private async Task<string> ValidatedNameAsync(string domain)
    {
        if (_validatedNames is null)
        {
            _validatedNames = [];
            var ptr = await AskAsync(t => _dns.PtrAsync(_values.Ip, t)).ConfigureAwait(false);
            foreach (var name in ptr.Records.Take(MaxAddressLookups))
            {
                if (await IsValidatedAsync(name).ConfigureAwait(false))
                {
                    _validatedNames.Add(name.TrimEnd('.'));
                }
            }
        }
        return _validatedNames.FirstOrDefault(n => n.Equals(domain, StringComparison.OrdinalIgnoreCase))
            ?? _validatedNames.FirstOrDefault(n => SpfDomainName.IsSameOrSubdomain(n, domain))
            ?? _validatedNames.FirstOrDefault()
            ?? "unknown";
    }

    // RFC 7208 §5.5: a PTR name is validated when one of its addresses is the client's.
    private async Task<bool> IsValidatedAsync(string ptrName)
    {
        if (SpfDomainName.ToQueryName(ptrName) is not { } name)
        {
            return false;
        }
        var answer = await AddressesAsync(name).ConfigureAwait(false);
        return answer.Records.Any(a => a.Equals(_values.Ip));
    }

    private Task<DnsAnswer<IPAddress>> AddressesAsync(string name) =>
        IsIPv4 ? AskAsync(t => _dns.AAsync(name, t)) : AskAsync(t => _dns.AaaaAsync(name, t));

    // Every DNS question goes through here: past the time budget none is asked, and one cut short by
    // it is a temporary error (RFC 7208 §4.6.4: elapsed-time limit, temperror).
    private async Task<DnsAnswer<T>> AskAsync<T>(Func<CancellationToken, Task<DnsAnswer<T>>> query)
    {
        if (TimedOut || _time.GetElapsedTime(_started) >= _timeLimit)
        {
            TimedOut = true;
            return DnsAnswer<T>.TempError;
        }
        try
        {
            return await query(_token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!_callerToken.IsCancellationRequested)
        {
            TimedOut = true;
            return DnsAnswer<T>.TempError;
        }
    }

    // RFC 7208 §4.6.4: a void lookup is NXDOMAIN, or an answer with no records.
    private static bool IsVoid<T>(DnsAnswer<T> answer) =>
        answer.Status == DnsStatus.NxDomain || (answer.Status == DnsStatus.Ok && answer.Records.Count == 0);

    // Names come from DNS and from the client: keep reasons on one printable line.
    private static string P(string name) => SpfMacroString.Printable(name);

    private bool CountDnsTerm() => ++DnsTerms <= MaxDnsTerms;

    private bool CountVoid() => ++VoidLookups <= MaxVoidLookups;

    private static SpfVerdict TooManyDnsTerms() =>
        new(AuthResult.PermError, $"more than {MaxDnsTerms} DNS-querying mechanisms and modifiers (RFC 7208 4.6.4)");

    private static SpfVerdict TooManyVoidLookups() =>
        new(AuthResult.PermError, $"more than {MaxVoidLookups} DNS lookups without an answer (RFC 7208 4.6.4)");

    private int Prefix(SpfDirective directive) => IsIPv4 ? directive.Ip4Prefix : directive.Ip6Prefix;

    /// <summary>
    /// Whether <paramref name="ip"/> is in <paramref name="network"/>/<paramref name="prefix"/>. Addresses of
    /// different families never match, with one exception: RFC 7208 §5 has an IPv4-mapped IPv6 address
    /// stand for its IPv4 address, and the same reading is given to a network published that way
    /// ("ip6:::ffff:192.0.2.1", prefix 96 or more), so it matches that IPv4 client. "ip6:::/0" still
    /// matches no IPv4 client.
    /// </summary>
    internal static bool InNetwork(IPAddress ip, IPAddress network, int prefix)
    {
        if (ip.AddressFamily == AddressFamily.InterNetwork && network.IsIPv4MappedToIPv6)
        {
            if (prefix < 96)
            {
                return false;
            }
            network = network.MapToIPv4();
            prefix -= 96;
        }
        if (ip.AddressFamily != network.AddressFamily)
        {
            return false;
        }
        var a = ip.GetAddressBytes();
        var b = network.GetAddressBytes();
        var whole = prefix / 8;
        for (var i = 0; i < whole; i++)
        {
            if (a[i] != b[i])
            {
                return false;
            }
        }
        var bits = prefix % 8;
        if (bits == 0)
        {
            return true;
        }
        var mask = (byte)(0xFF << (8 - bits));
        return (a[whole] & mask) == (b[whole] & mask);
    }

    private readonly record struct DirectiveMatch(bool Matched, SpfVerdict? Stop, string? Detail)
    {
        public static readonly DirectiveMatch Yes = new(true, null, null);
        public static readonly DirectiveMatch No = new(false, null, null);

        public static DirectiveMatch Of(bool matched) => matched ? Yes : No;

        public static DirectiveMatch Because(string detail) => new(true, null, detail);

        public static DirectiveMatch Halt(SpfVerdict verdict) => new(false, verdict, null);
    }
}
