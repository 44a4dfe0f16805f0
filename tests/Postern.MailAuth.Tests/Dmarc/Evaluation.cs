using Postern.MailAuth.Dmarc;
using Postern.MailAuth.PublicSuffix;

namespace Postern.MailAuth.Tests.Dmarc;

/// <summary>
/// DMARC evaluation end to end against a fake DNS: the policy and alignment cases the conformance
/// README restates from Stalwart mail-auth (src/dmarc/verify.rs), then pct=, errors and reporting.
/// </summary>
public sealed class Evaluation
{
    private static readonly MechanismResult NoSpf = new(AuthResult.None, null);

    private static MechanismResult Pass(string domain) => new(AuthResult.Pass, domain);

    // ---- mail-auth: alignment ----

    [Fact]
    public async Task StrictAlignmentWithTheSameDomainPasses()
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=reject; aspf=s; adkim=s");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("example.org", Pass("example.org"), [Pass("example.org")]);
        Assert.Equal(AuthResult.Pass, outcome.Result);
        Assert.Equal(IdentifierAlignment.Aligned, outcome.Spf);
        Assert.Equal(IdentifierAlignment.Aligned, outcome.Dkim);
        Assert.Equal("example.org", outcome.AlignedDkimDomain);
        Assert.Equal(DmarcPolicy.Reject, outcome.RequestedPolicy);
        Assert.Equal(DmarcPolicy.None, outcome.Disposition);
    }

    [Fact]
    public async Task RelaxedAlignmentWithASubdomainPasses()
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=reject; aspf=r; adkim=r");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("example.org", Pass("subdomain.example.org"), [Pass("subdomain.example.org")]);
        Assert.Equal(AuthResult.Pass, outcome.Result);
        Assert.Equal(IdentifierAlignment.Aligned, outcome.Spf);
        Assert.Equal(IdentifierAlignment.Aligned, outcome.Dkim);
    }

    [Fact]
    public async Task StrictAlignmentWithASubdomainFails()
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=reject; aspf=s; adkim=s");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("example.org", Pass("subdomain.example.org"), [Pass("subdomain.example.org")]);
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.Equal(IdentifierAlignment.NotAligned, outcome.Spf);
        Assert.Equal(IdentifierAlignment.NotAligned, outcome.Dkim);
        Assert.Equal(DmarcPolicy.Reject, outcome.Disposition);
    }

    [Fact]
    public async Task FailedMechanismsContributeNothing()
    {
        // DKIM failed (an expired signature) and SPF failed: both "none", and the policy is reject.
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=reject");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("example.org", new(AuthResult.Fail, "example.org"), [new(AuthResult.Fail, "example.org")]);
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.Equal(IdentifierAlignment.None, outcome.Spf);
        Assert.Equal(IdentifierAlignment.None, outcome.Dkim);
        Assert.Equal(DmarcPolicy.Reject, outcome.RequestedPolicy);
        Assert.Equal(DmarcPolicy.Reject, outcome.Disposition);
        Assert.Equal(PolicySource.Domain, outcome.PolicySource);
    }

    // ---- mail-auth: policy discovery with p, sp and np ----

    private static FakeDns PolicyZone() => new FakeDns()
        .Txt("_dmarc.example.org", "v=DMARC1; p=reject; sp=quarantine; np=none")
        .A("sub.example.org", "192.0.2.1");

    [Fact]
    public async Task TheDomainItselfGetsP()
    {
        var outcome = await new DmarcEvaluator(PolicyZone()).EvaluateAsync("example.org", NoSpf, []);
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.Equal(DmarcPolicy.Reject, outcome.Disposition);
        Assert.Equal(PolicySource.Domain, outcome.PolicySource);
    }

    [Fact]
    public async Task AnExistingSubdomainGetsSp()
    {
        var outcome = await new DmarcEvaluator(PolicyZone()).EvaluateAsync("sub.example.org", NoSpf, []);
        Assert.Equal(DmarcPolicy.Quarantine, outcome.Disposition);
        Assert.Equal(PolicySource.Subdomain, outcome.PolicySource);
        Assert.Equal("example.org", outcome.RecordDomain);
    }

    [Fact]
    public async Task ANonExistentSubdomainGetsNp()
    {
        var dns = PolicyZone();
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("ghost.example.org", NoSpf, []);
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.Equal(DmarcPolicy.None, outcome.Disposition);
        Assert.Equal(PolicySource.NonExistentSubdomain, outcome.PolicySource);
        Assert.Contains("A ghost.example.org", dns.Questions);
        Assert.Contains("AAAA ghost.example.org", dns.Questions);
        Assert.Contains("MX ghost.example.org", dns.Questions);
    }

    [Fact]
    public async Task ExistenceUnknownMeansSp()
    {
        var dns = PolicyZone().Failing("ghost.example.org");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("ghost.example.org", NoSpf, []);
        Assert.Equal(PolicySource.Subdomain, outcome.PolicySource);
        Assert.Equal(DmarcPolicy.Quarantine, outcome.Disposition);
    }

    [Fact]
    public async Task WithoutSpSubdomainsGetP()
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=quarantine");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("sub.example.org", NoSpf, []);
        Assert.Equal(DmarcPolicy.Quarantine, outcome.Disposition);
        Assert.Equal(PolicySource.Domain, outcome.PolicySource);
        Assert.DoesNotContain(dns.Questions, q => !q.StartsWith("TXT", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MissingPWithAReportAddressIsPNone()
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; rua=mailto:dmarc@example.org");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("example.org", NoSpf, []);
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.Equal(DmarcPolicy.None, outcome.RequestedPolicy);
        Assert.Equal(DmarcPolicy.None, outcome.Disposition);
        Assert.Equal(PolicySource.InvalidPolicyAsNone, outcome.PolicySource);
    }

    [Fact]
    public async Task InvalidPolicyWithoutAReportAddressIsPermError()
    {
        // RFC 7489 §6.6.3 step 6.2 (no DMARC processing) reported as §11.2's permerror.
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=bob");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("example.org", NoSpf, []);
        Assert.Equal(AuthResult.PermError, outcome.Result);
        Assert.Equal(DmarcRecordStatus.Invalid, outcome.RecordStatus);
        Assert.Equal(DmarcPolicy.None, outcome.Disposition);
        Assert.NotNull(outcome.Record);
    }

    [Fact]
    public async Task NoRecordAnywhereMeansDmarcDoesNotApply()
    {
        var outcome = await new DmarcEvaluator(new FakeDns()).EvaluateAsync("example.org", Pass("example.org"), []);
        Assert.Equal(AuthResult.None, outcome.Result);
        Assert.Equal(DmarcRecordStatus.NotFound, outcome.RecordStatus);
        Assert.Equal(DmarcPolicy.None, outcome.Disposition);
        Assert.Equal(PolicySource.NotApplicable, outcome.PolicySource);
    }

    [Fact]
    public async Task MultipleRecordsMeanDmarcDoesNotApply()
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=reject", "v=DMARC1; p=none");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("example.org", NoSpf, []);
        Assert.Equal(AuthResult.None, outcome.Result);
        Assert.Equal(DmarcRecordStatus.Multiple, outcome.RecordStatus);
        Assert.Equal(DmarcPolicy.None, outcome.Disposition);
    }

    // ---- mail-auth: DMARCbis tree walk (psd=), which RFC 7489 discovery does not do ----

    [Fact]
    public async Task PsdNoCaseAlignsAsRelaxedAlignmentDoes()
    {
        // mail-auth: psd=n at _dmarc.mail.example.com; From a.mail.example.com, SPF b.mail.example.com: aligned.
        Assert.True(DmarcAlignment.IsAligned("b.mail.example.com", "a.mail.example.com", AlignmentMode.Relaxed, PublicSuffixList.Embedded));
        // RFC 7489 discovery goes from a.mail.example.com straight to example.com, so the record at
        // mail.example.com (which only a DMARCbis tree walk would find) is not used.
        var dns = new FakeDns().Txt("_dmarc.mail.example.com", "v=DMARC1; p=reject; psd=n");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("a.mail.example.com", Pass("b.mail.example.com"), []);
        Assert.Equal(DmarcRecordStatus.NotFound, outcome.RecordStatus);
        Assert.Equal(["TXT _dmarc.a.mail.example.com", "TXT _dmarc.example.com"], dns.Questions);
    }

    [Fact]
    public void PsdYesIsReachedThroughThePublicSuffixListInstead()
    {
        // mail-auth: psd=y at _dmarc.bank.example makes giant.bank.example and mega.bank.example two
        // organizations (not aligned). RFC 7489 reads no psd=; with the published list, "example" is the
        // suffix, so they align...
        Assert.True(DmarcAlignment.IsAligned("giant.bank.example", "mega.bank.example", AlignmentMode.Relaxed, PublicSuffixList.Embedded));
        // ...and a public suffix domain is made one the RFC 7489 way, by being on the list (as real
        // ones such as "bank" are), which a list loaded from configuration can do.
        var withPsd = PublicSuffixList.Parse(new StringReader("example\nbank.example\n"));
        Assert.False(DmarcAlignment.IsAligned("giant.bank.example", "mega.bank.example", AlignmentMode.Relaxed, withPsd));
    }

    // ---- pct= sampling (RFC 7489 §6.6.4) ----

    private sealed class FixedRandom(int value) : Random
    {
        public int Calls { get; private set; }

        public override int Next(int maxValue)
        {
            Calls++;
            return value;
        }
    }

    [Theory]
    [InlineData("reject", 50, 49, DmarcPolicy.Reject, false)]
    [InlineData("reject", 50, 50, DmarcPolicy.Quarantine, true)]
    [InlineData("quarantine", 50, 49, DmarcPolicy.Quarantine, false)]
    [InlineData("quarantine", 50, 99, DmarcPolicy.None, true)]
    [InlineData("reject", 0, 0, DmarcPolicy.Quarantine, true)]
    [InlineData("reject", 1, 0, DmarcPolicy.Reject, false)]
    [InlineData("reject", 99, 99, DmarcPolicy.Quarantine, true)]
    public async Task PctSamplesFailingMessages(string policy, int pct, int draw, DmarcPolicy disposition, bool sampledOut)
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", $"v=DMARC1; p={policy}; pct={pct}");
        var random = new FixedRandom(draw);
        var outcome = await new DmarcEvaluator(dns, random: random).EvaluateAsync("example.org", NoSpf, []);
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.Equal(disposition, outcome.Disposition);
        Assert.Equal(sampledOut, outcome.SampledOut);
        Assert.Equal(1, random.Calls);
    }

    [Theory]
    [InlineData("v=DMARC1; p=reject")]
    [InlineData("v=DMARC1; p=reject; pct=100")]
    [InlineData("v=DMARC1; p=none; pct=10")]
    public async Task NoDrawWhenSamplingCannotMatter(string record)
    {
        var random = new FixedRandom(99);
        var outcome = await new DmarcEvaluator(new FakeDns().Txt("_dmarc.example.org", record), random: random).EvaluateAsync("example.org", NoSpf, []);
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.False(outcome.SampledOut);
        Assert.Equal(0, random.Calls);
    }

    [Fact]
    public async Task PassingMailIsNeverSampled()
    {
        var random = new FixedRandom(99);
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=reject; pct=10");
        var outcome = await new DmarcEvaluator(dns, random: random).EvaluateAsync("example.org", NoSpf, [Pass("example.org")]);
        Assert.Equal(AuthResult.Pass, outcome.Result);
        Assert.Equal(DmarcPolicy.None, outcome.Disposition);
        Assert.Equal(0, random.Calls);
    }

    // ---- DKIM and SPF inputs ----

    [Fact]
    public async Task AnyAlignedPassingSignatureIsEnough()
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=reject");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("example.org",
            new(AuthResult.SoftFail, "example.org"),
            [new(AuthResult.Fail, "example.org"), Pass("esp.example.net"), Pass("Mail.Example.ORG"), new(AuthResult.PermError, null)]);
        Assert.Equal(AuthResult.Pass, outcome.Result);
        Assert.Equal(IdentifierAlignment.None, outcome.Spf);
        Assert.Equal(IdentifierAlignment.Aligned, outcome.Dkim);
        Assert.Equal("mail.example.org", outcome.AlignedDkimDomain);
    }

    [Fact]
    public async Task SpfAloneIsEnough()
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=reject");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("example.org", Pass("bounces.example.org"), [Pass("esp.example.net")]);
        Assert.Equal(AuthResult.Pass, outcome.Result);
        Assert.Equal(IdentifierAlignment.Aligned, outcome.Spf);
        Assert.Equal(IdentifierAlignment.NotAligned, outcome.Dkim);
        Assert.Null(outcome.AlignedDkimDomain);
    }

    [Fact]
    public async Task PassingButUnalignedIsAFailure()
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=quarantine");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("example.org", Pass("example.net"), [Pass("example.net")]);
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.Equal(DmarcPolicy.Quarantine, outcome.Disposition);
    }

    // ---- temporary errors ----

    [Fact]
    public async Task DnsErrorOnTheRecordIsTempError()
    {
        var dns = new FakeDns().Failing("_dmarc.example.org");
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync("example.org", Pass("example.org"), []);
        Assert.Equal(AuthResult.TempError, outcome.Result);
        Assert.Equal(DmarcRecordStatus.TempError, outcome.RecordStatus);
        Assert.Equal(DmarcPolicy.None, outcome.Disposition);
    }

    [Fact]
    public async Task TemporaryErrorInAnAlignedCheckIsTempErrorNotFail()
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=reject");
        var evaluator = new DmarcEvaluator(dns);
        var spf = await evaluator.EvaluateAsync("example.org", new(AuthResult.TempError, "example.org"), []);
        Assert.Equal(AuthResult.TempError, spf.Result);
        Assert.Equal(DmarcPolicy.Reject, spf.RequestedPolicy);
        Assert.Equal(DmarcPolicy.None, spf.Disposition);
        var dkim = await evaluator.EvaluateAsync("example.org", NoSpf, [new(AuthResult.TempError, "example.org")]);
        Assert.Equal(AuthResult.TempError, dkim.Result);
        // An unaligned temporary error could not have passed DMARC anyway.
        var unaligned = await evaluator.EvaluateAsync("example.org", new(AuthResult.TempError, "example.net"), []);
        Assert.Equal(AuthResult.Fail, unaligned.Result);
        Assert.Equal(DmarcPolicy.Reject, unaligned.Disposition);
    }

    // ---- the Author Domain (RFC 7489 §6.6.1) ----

    [Fact]
    public async Task SeveralAuthorsFailWithTheStrictestPolicy()
    {
        var dns = new FakeDns().Txt("_dmarc.bank.example.com", "v=DMARC1; p=reject");
        var author = AuthorDomain.FromFieldValues(["attacker@evil.example.net, ceo@bank.example.com"]);
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync(author, Pass("evil.example.net"), [Pass("evil.example.net")]);
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.Equal(AuthorProblem.MultipleAddresses, outcome.AuthorProblem);
        Assert.Equal(DmarcPolicy.Reject, outcome.Disposition);
        Assert.Equal("bank.example.com", outcome.AuthorDomain);
        Assert.StartsWith("dmarc=fail (several From addresses; p=reject dis=reject) header.from=bank.example.com", outcome.ToAuthenticationResults(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SeveralFromFieldsFailEvenWhenEachPasses()
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=reject");
        var author = AuthorDomain.FromFieldValues(["a@example.org", "b@example.org"]);
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync(author, Pass("example.org"), []);
        Assert.Equal(AuthResult.Fail, outcome.Result);
        Assert.Equal(AuthorProblem.MultipleFromFields, outcome.AuthorProblem);
        Assert.Equal(DmarcPolicy.None, outcome.Disposition);
    }

    [Theory]
    [InlineData(AuthorProblem.NoFromField)]
    [InlineData(AuthorProblem.NoAddress, "undisclosed-recipients:;")]
    [InlineData(AuthorProblem.NoDomain, "postmaster")]
    [InlineData(AuthorProblem.NoDomain, "joe@[192.0.2.1]")]
    public async Task NoAuthorDomainIsPermError(AuthorProblem problem, params string[] from)
    {
        var dns = new FakeDns();
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync(AuthorDomain.FromFieldValues(from), Pass("example.org"), []);
        Assert.Equal(AuthResult.PermError, outcome.Result);
        Assert.Equal(problem, outcome.AuthorProblem);
        Assert.Equal(DmarcPolicy.None, outcome.Disposition);
        Assert.Empty(dns.Questions);
    }

    [Fact]
    public async Task SingleAuthorIsEvaluatedNormally()
    {
        var dns = new FakeDns().Txt("_dmarc.example.org", "v=DMARC1; p=reject");
        var author = AuthorDomain.FromFieldValues(["\"Example\" <news@Example.ORG>"]);
        var outcome = await new DmarcEvaluator(dns).EvaluateAsync(author, Pass("example.org"), []);
        Assert.Equal(AuthResult.Pass, outcome.Result);
        Assert.Equal(AuthorProblem.None, outcome.AuthorProblem);
    }

    // ---- Authentication-Results ----

    [Fact]
    public async Task AuthenticationResultsText()
    {
        var dns = new FakeDns()
            .Txt("_dmarc.example.org", "v=DMARC1; p=reject; sp=quarantine; pct=50")
            .A("sub.example.org", "192.0.2.1");
        var evaluator = new DmarcEvaluator(dns, random: new FixedRandom(75));
        Assert.Equal("dmarc=pass (p=reject sp=quarantine pct=50 dis=none) header.from=example.org",
            (await evaluator.EvaluateAsync("example.org", Pass("example.org"), [])).ToAuthenticationResults());
        Assert.Equal("dmarc=fail (p=reject sp=quarantine pct=50 dis=none sampled out) header.from=sub.example.org",
            (await evaluator.EvaluateAsync("Sub.Example.Org.", NoSpf, [])).ToAuthenticationResults());
        Assert.Equal("dmarc=none (no DMARC record) header.from=example.com",
            (await evaluator.EvaluateAsync("example.com", NoSpf, [])).ToAuthenticationResults());
        Assert.Equal("dmarc=permerror (no usable domain in From)",
            (await evaluator.EvaluateAsync("mac...com", NoSpf, [])).ToAuthenticationResults());
    }
}
