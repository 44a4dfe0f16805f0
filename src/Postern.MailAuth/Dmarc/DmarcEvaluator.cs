using Postern.MailAuth.Dns;
using Postern.MailAuth.PublicSuffix;

namespace Postern.MailAuth.Dmarc;

/// <summary>
/// DMARC (RFC 7489) for one received message: policy discovery, identifier alignment, the result and
/// the disposition. It takes SPF's and DKIM's results as input and asks DNS only for the policy record
/// (and, for an np= record, whether the Author Domain exists); it keeps no state between messages.
/// </summary>
/// <remarks>
/// Discovery is RFC 7489 §6.6.3, not DMARCbis's tree walk: the record at _dmarc.&lt;Author Domain&gt;,
/// else at _dmarc.&lt;Organizational Domain&gt; from the Public Suffix List (both sections, see
/// <see cref="PublicSuffixList"/>); at most two TXT queries. The psd= tag is therefore not read. np=
/// (RFC 9091) is honoured for a non-existent subdomain, which costs three more queries (A, AAAA, MX)
/// and only when the record has np=.
/// </remarks>
public sealed class DmarcEvaluator
{
    private readonly IMailAuthDns _dns;
    private readonly Random _random;

    /// <param name="dns">Where the _dmarc TXT records come from.</param>
    /// <param name="publicSuffixes">The list for Organizational Domains; the embedded copy when null.</param>
    /// <param name="random">The pct= sampler (RFC 7489 §6.6.4): <c>Next(100)</c> below pct applies the policy. <see cref="Random.Shared"/> when null; tests pass their own. It is called from whichever thread evaluates, so it must be thread-safe when the evaluator is shared.</param>
    public DmarcEvaluator(IMailAuthDns dns, PublicSuffixList? publicSuffixes = null, Random? random = null)
    {
        _dns = dns ?? throw new ArgumentNullException(nameof(dns));
        PublicSuffixes = publicSuffixes ?? PublicSuffixList.Embedded;
        _random = random ?? Random.Shared;
    }

    /// <summary>The Public Suffix List in use.</summary>
    public PublicSuffixList PublicSuffixes { get; }

    /// <summary>Evaluates a message whose From field(s) gave <paramref name="author"/> (see <see cref="AuthorDomain"/>).</summary>
    /// <remarks>
    /// No From address, or no usable domain: permerror, no disposition (RFC 7489 §6.6.1 puts such
    /// messages outside DMARC; the session decides). Several From fields or addresses: the message fails
    /// DMARC, and each distinct domain is evaluated as RFC 7489 §6.6.1 describes, the strictest
    /// disposition among them winning, so a second author cannot switch a p=reject domain's policy off.
    /// </remarks>
    public async Task<DmarcOutcome> EvaluateAsync(AuthorDomain author, MechanismResult spf, IReadOnlyList<MechanismResult> dkim, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(author);
        ArgumentNullException.ThrowIfNull(dkim);
        switch (author.Problem)
        {
            case AuthorProblem.None:
                return await EvaluateDomainAsync(author.Domain!, spf, dkim, cancellationToken).ConfigureAwait(false);
            case AuthorProblem.MultipleFromFields or AuthorProblem.MultipleAddresses when author.Domains.Count > 0:
                var prefix = author.Problem == AuthorProblem.MultipleFromFields ? "several From fields" : "several From addresses";
                DmarcOutcome? strictest = null;
                foreach (var domain in author.Domains)
                {
                    var outcome = await EvaluateDomainAsync(domain, spf, dkim, cancellationToken).ConfigureAwait(false);
                    if (strictest is null || Strictness(outcome) > Strictness(strictest))
                    {
                        strictest = outcome;
                    }
                }
                return strictest! with
                {
                    Result = AuthResult.Fail,
                    AuthorProblem = author.Problem,
                    Comment = $"{prefix}; {strictest.Comment}",
                };
            default:
                return new DmarcOutcome
                {
                    Result = AuthResult.PermError,
                    AuthorProblem = author.Problem,
                    Comment = author.Problem switch
                    {
                        AuthorProblem.NoFromField => "no From field",
                        AuthorProblem.NoAddress => "no address in From",
                        AuthorProblem.NoDomain => "no usable domain in From",
                        _ => "several From addresses without a usable domain",
                    },
                };
        }
    }

    /// <summary>Evaluates a message whose single From address has the domain <paramref name="authorDomain"/>.</summary>
    /// <param name="authorDomain">The RFC5322.From domain (Unicode or A-labels; case and outer dots do not matter).</param>
    /// <param name="spf">SPF's result for the MAIL FROM identity and that identity's domain.</param>
    /// <param name="dkim">One entry per DKIM signature: its result and d=.</param>
    /// <param name="cancellationToken">Cancels the DNS queries.</param>
    public Task<DmarcOutcome> EvaluateAsync(string authorDomain, MechanismResult spf, IReadOnlyList<MechanismResult> dkim, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(dkim);
        var normalized = DmarcAlignment.Normalize(authorDomain);
        if (normalized is null)
        {
            return Task.FromResult(new DmarcOutcome
            {
                Result = AuthResult.PermError,
                AuthorProblem = AuthorProblem.NoDomain,
                Comment = "no usable domain in From",
            });
        }
        return EvaluateDomainAsync(normalized, spf, dkim, cancellationToken);
    }

    /// <summary>
    /// Policy discovery alone (RFC 7489 §6.6.3), for diagnostics: the record at _dmarc.&lt;domain&gt;,
    /// else at _dmarc.&lt;Organizational Domain&gt;.
    /// </summary>
    /// <exception cref="ArgumentException">The domain is not a valid domain name.</exception>
    public Task<DmarcDiscovery> DiscoverAsync(string authorDomain, CancellationToken cancellationToken = default)
    {
        var normalized = DmarcAlignment.Normalize(authorDomain) ?? throw new ArgumentException($"'{authorDomain}' is not a domain name", nameof(authorDomain));
        return DiscoverNormalizedAsync(normalized, cancellationToken);
    }

    private async Task<DmarcDiscovery> DiscoverNormalizedAsync(string author, CancellationToken cancellationToken)
    {
        // §6.6.3 steps 1-2: the Author Domain's own record.
        var own = await LookUpAsync(author, atOrganizationalDomain: false, cancellationToken).ConfigureAwait(false);
        if (own.Status != DmarcRecordStatus.NotFound)
        {
            return own;
        }
        // Step 3-4: the Organizational Domain's, if it is another name.
        var organizational = DmarcAlignment.OrganizationalDomain(author, PublicSuffixes);
        if (organizational == author)
        {
            return own;
        }
        return await LookUpAsync(organizational, atOrganizationalDomain: true, cancellationToken).ConfigureAwait(false);
    }

    private async Task<DmarcDiscovery> LookUpAsync(string domain, bool atOrganizationalDomain, CancellationToken cancellationToken)
    {
        var name = "_dmarc." + domain;
        if (name.Length > DomainName.MaxLength)
        {
            // Too long to exist.
            return new DmarcDiscovery(DmarcRecordStatus.NotFound, domain, null, atOrganizationalDomain);
        }
        var answer = await _dns.TxtAsync(name, cancellationToken).ConfigureAwait(false);
        if (answer.Status == DnsStatus.TempError)
        {
            // §6.6.3: DNS errors are left to the receiver; they are not "no record".
            return new DmarcDiscovery(DmarcRecordStatus.TempError, domain, null, atOrganizationalDomain);
        }
        DmarcRecord? found = null;
        var count = 0;
        foreach (var text in answer.Records)
        {
            // Steps 2 and 4: TXT records that are not DMARC records are discarded.
            if (DmarcRecord.Parse(text) is { } record)
            {
                found ??= record;
                count++;
            }
        }
        if (count == 0)
        {
            return new DmarcDiscovery(DmarcRecordStatus.NotFound, domain, null, atOrganizationalDomain);
        }
        if (count > 1)
        {
            // Step 5: several records, DMARC does not apply (and no falling back to the Organizational Domain).
            return new DmarcDiscovery(DmarcRecordStatus.Multiple, domain, null, atOrganizationalDomain);
        }
        // Step 6: without a valid p= the record is usable only as p=none, and only with a valid rua=.
        var usable = found!.HasValidPolicy || found.AggregateReportUris.Count > 0;
        return new DmarcDiscovery(usable ? DmarcRecordStatus.Found : DmarcRecordStatus.Invalid, domain, found, atOrganizationalDomain);
    }

    private async Task<DmarcOutcome> EvaluateDomainAsync(string author, MechanismResult spf, IReadOnlyList<MechanismResult> dkim, CancellationToken cancellationToken)
    {
        var discovery = await DiscoverNormalizedAsync(author, cancellationToken).ConfigureAwait(false);
        var outcome = new DmarcOutcome
        {
            Result = AuthResult.None,
            AuthorDomain = author,
            RecordStatus = discovery.Status,
            RecordDomain = discovery.RecordDomain,
            Record = discovery.Record,
        };
        switch (discovery.Status)
        {
            case DmarcRecordStatus.TempError:
                return outcome with { Result = AuthResult.TempError, Comment = $"DNS error looking up _dmarc.{discovery.RecordDomain}" };
            case DmarcRecordStatus.NotFound:
                return outcome with { Comment = "no DMARC record" };
            case DmarcRecordStatus.Multiple:
                return outcome with { Comment = $"several DMARC records at _dmarc.{discovery.RecordDomain}" };
            case DmarcRecordStatus.Invalid:
                return outcome with { Result = AuthResult.PermError, Comment = $"no valid p= and no valid rua= at _dmarc.{discovery.RecordDomain}" };
        }

        var record = discovery.Record!;
        // RFC 7489 §3.1.2: SPF counts when it passed for a domain aligned with the Author Domain.
        var spfAlignment = Contribution(spf, author, record.SpfAlignment);
        var spfTempError = spf.Result == AuthResult.TempError && DmarcAlignment.IsAligned(spf.Domain, author, record.SpfAlignment, PublicSuffixes);
        // RFC 7489 §3.1.1, §4.2: any passing signature with an aligned d= is enough.
        var dkimAlignment = IdentifierAlignment.None;
        string? alignedDkim = null;
        var dkimTempError = false;
        foreach (var signature in dkim)
        {
            var contribution = Contribution(signature, author, record.DkimAlignment);
            if (contribution == IdentifierAlignment.Aligned && alignedDkim is null)
            {
                alignedDkim = DmarcAlignment.Normalize(signature.Domain);
            }
            dkimAlignment = (IdentifierAlignment)Math.Max((int)dkimAlignment, (int)contribution);
            dkimTempError |= signature.Result == AuthResult.TempError && DmarcAlignment.IsAligned(signature.Domain, author, record.DkimAlignment, PublicSuffixes);
        }

        var (requested, source) = await RequestedPolicyAsync(author, discovery, cancellationToken).ConfigureAwait(false);
        outcome = outcome with
        {
            RequestedPolicy = requested,
            PolicySource = source,
            Spf = spfAlignment,
            Dkim = dkimAlignment,
            AlignedDkimDomain = alignedDkim,
        };

        if (spfAlignment == IdentifierAlignment.Aligned || dkimAlignment == IdentifierAlignment.Aligned)
        {
            return outcome with { Result = AuthResult.Pass, Comment = Describe(outcome, DmarcPolicy.None, sampledOut: false) };
        }
        if (spfTempError || dkimTempError)
        {
            // A temporary error in an aligned check might have been a pass: the verdict is not known yet.
            return outcome with
            {
                Result = AuthResult.TempError,
                Comment = Describe(outcome, DmarcPolicy.None, sampledOut: false) + "; temporary error in an aligned " + (spfTempError ? "SPF" : "DKIM") + " check",
            };
        }

        // RFC 7489 §6.6.4 and §6.3 pct: a failing message outside the sample gets the next milder policy.
        var disposition = requested;
        var sampledOut = false;
        if (requested != DmarcPolicy.None && record.Percent < 100 && _random.Next(100) >= record.Percent)
        {
            disposition = requested == DmarcPolicy.Reject ? DmarcPolicy.Quarantine : DmarcPolicy.None;
            sampledOut = true;
        }
        return outcome with
        {
            Result = AuthResult.Fail,
            Disposition = disposition,
            SampledOut = sampledOut,
            Comment = Describe(outcome, disposition, sampledOut),
        };
    }

    private IdentifierAlignment Contribution(MechanismResult result, string author, AlignmentMode mode) =>
        result.Result != AuthResult.Pass ? IdentifierAlignment.None
        : DmarcAlignment.IsAligned(result.Domain, author, mode, PublicSuffixes) ? IdentifierAlignment.Aligned
        : IdentifierAlignment.NotAligned;

    /// <summary>Which of p=, sp= and np= speaks for <paramref name="author"/> (RFC 7489 §6.3, RFC 9091 §4.1).</summary>
    private async Task<(DmarcPolicy Policy, PolicySource Source)> RequestedPolicyAsync(string author, DmarcDiscovery discovery, CancellationToken cancellationToken)
    {
        var record = discovery.Record!;
        if (!record.HasValidPolicy)
        {
            // §6.6.3 step 6.1: "as if a record containing a valid v tag and p=none was retrieved".
            return (DmarcPolicy.None, PolicySource.InvalidPolicyAsNone);
        }
        if (!discovery.AtOrganizationalDomain)
        {
            return (record.Policy!.Value, PolicySource.Domain);
        }
        if (record.NonExistentSubdomainPolicy is { } nonExistent && !await ExistsAsync(author, cancellationToken).ConfigureAwait(false))
        {
            return (nonExistent, PolicySource.NonExistentSubdomain);
        }
        return record.SubdomainPolicy is { } subdomain ? (subdomain, PolicySource.Subdomain) : (record.Policy!.Value, PolicySource.Domain);
    }

    /// <summary>
    /// RFC 9091 §2.1: a domain does not exist when A, AAAA and MX all answer NXDOMAIN or NODATA. A DNS
    /// error counts as existing, so that np= is only used when non-existence is certain.
    /// </summary>
    private async Task<bool> ExistsAsync(string domain, CancellationToken cancellationToken)
    {
        var a = _dns.AAsync(domain, cancellationToken);
        var aaaa = _dns.AaaaAsync(domain, cancellationToken);
        var mx = _dns.MxAsync(domain, cancellationToken);
        await Task.WhenAll(a, aaaa, mx).ConfigureAwait(false);
        return Exists(a.Result.Status, a.Result.Records.Count)
            || Exists(aaaa.Result.Status, aaaa.Result.Records.Count)
            || Exists(mx.Result.Status, mx.Result.Records.Count);

        static bool Exists(DnsStatus status, int records) => status == DnsStatus.TempError || (status == DnsStatus.Ok && records > 0);
    }

    /// <summary>The comment: the policy asked for and the disposition, as receivers commonly write them.</summary>
    private static string Describe(DmarcOutcome outcome, DmarcPolicy disposition, bool sampledOut)
    {
        var record = outcome.Record!;
        if (outcome.PolicySource == PolicySource.InvalidPolicyAsNone)
        {
            return $"no valid p=, treated as p=none dis={DmarcOutcome.PolicyWord(disposition)}";
        }
        var text = $"p={DmarcOutcome.PolicyWord(record.Policy!.Value)}";
        if (record.SubdomainPolicy is { } subdomain)
        {
            text += $" sp={DmarcOutcome.PolicyWord(subdomain)}";
        }
        if (outcome.PolicySource == PolicySource.NonExistentSubdomain)
        {
            text += $" np={DmarcOutcome.PolicyWord(outcome.RequestedPolicy)}";
        }
        if (record.Percent != 100)
        {
            text += $" pct={record.Percent}";
        }
        text += $" dis={DmarcOutcome.PolicyWord(disposition)}";
        return sampledOut ? text + " sampled out" : text;
    }

    /// <summary>Orders outcomes by how strict their consequence is: disposition first, then a failure over anything else.</summary>
    private static int Strictness(DmarcOutcome outcome) =>
        ((int)outcome.Disposition * 4) + outcome.Result switch
        {
            AuthResult.Fail => 3,
            AuthResult.TempError => 2,
            AuthResult.PermError => 1,
            _ => 0,
        };
}
