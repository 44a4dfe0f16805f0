using Postern.MailAuth.Dmarc;

namespace Postern.MailAuth.Tests.Dmarc;

/// <summary>RFC 7489 §6.6.3 record discovery against a fake DNS.</summary>
public sealed class PolicyDiscovery
{
    [Fact]
    public async Task RecordAtTheAuthorDomainItself()
    {
        var dns = new FakeDns()
            .Txt("_dmarc.mail.example.com", "v=DMARC1; p=quarantine")
            .Txt("_dmarc.example.com", "v=DMARC1; p=reject");
        var found = await new DmarcEvaluator(dns).DiscoverAsync("mail.example.com");
        Assert.Equal(DmarcRecordStatus.Found, found.Status);
        Assert.Equal("mail.example.com", found.RecordDomain);
        Assert.False(found.AtOrganizationalDomain);
        Assert.Equal(DmarcPolicy.Quarantine, found.Record!.Policy);
        Assert.Equal(["TXT _dmarc.mail.example.com"], dns.Questions);
    }

    [Fact]
    public async Task FallsBackToTheOrganizationalDomain()
    {
        var dns = new FakeDns().Txt("_dmarc.example.co.uk", "v=DMARC1; p=reject");
        var found = await new DmarcEvaluator(dns).DiscoverAsync("a.b.example.co.uk");
        Assert.Equal(DmarcRecordStatus.Found, found.Status);
        Assert.Equal("example.co.uk", found.RecordDomain);
        Assert.True(found.AtOrganizationalDomain);
        // Not a tree walk: the Author Domain, then straight to the Organizational Domain.
        Assert.Equal(["TXT _dmarc.a.b.example.co.uk", "TXT _dmarc.example.co.uk"], dns.Questions);
    }

    [Fact]
    public async Task OtherTxtRecordsAreDiscarded()
    {
        var dns = new FakeDns()
            .Txt("_dmarc.example.com", "v=spf1 -all", "google-site-verification=abc", "v=DMARC1; p=none");
        var found = await new DmarcEvaluator(dns).DiscoverAsync("example.com");
        Assert.Equal(DmarcRecordStatus.Found, found.Status);
        Assert.Equal(DmarcPolicy.None, found.Record!.Policy);
    }

    [Fact]
    public async Task OnlyNonDmarcRecordsMeanFallingBack()
    {
        var dns = new FakeDns()
            .Txt("_dmarc.sub.example.com", "something else")
            .Txt("_dmarc.example.com", "v=DMARC1; p=reject");
        var found = await new DmarcEvaluator(dns).DiscoverAsync("sub.example.com");
        Assert.Equal(DmarcRecordStatus.Found, found.Status);
        Assert.Equal("example.com", found.RecordDomain);
    }

    [Fact]
    public async Task MultipleRecordsMeanNoDmarcAndNoFallback()
    {
        var dns = new FakeDns()
            .Txt("_dmarc.sub.example.com", "v=DMARC1; p=none", "v=DMARC1; p=reject")
            .Txt("_dmarc.example.com", "v=DMARC1; p=reject");
        var found = await new DmarcEvaluator(dns).DiscoverAsync("sub.example.com");
        Assert.Equal(DmarcRecordStatus.Multiple, found.Status);
        Assert.Equal("sub.example.com", found.RecordDomain);
        Assert.Null(found.Record);
        Assert.Single(dns.Questions);
    }

    [Fact]
    public async Task MultipleRecordsAtTheOrganizationalDomain()
    {
        var dns = new FakeDns().Txt("_dmarc.example.com", "v=DMARC1; p=none", "v=DMARC1; p=none");
        var found = await new DmarcEvaluator(dns).DiscoverAsync("sub.example.com");
        Assert.Equal(DmarcRecordStatus.Multiple, found.Status);
        Assert.Equal("example.com", found.RecordDomain);
    }

    [Fact]
    public async Task TemporaryErrorIsNotAbsence()
    {
        var dns = new FakeDns().Failing("_dmarc.sub.example.com").Txt("_dmarc.example.com", "v=DMARC1; p=none");
        var found = await new DmarcEvaluator(dns).DiscoverAsync("sub.example.com");
        Assert.Equal(DmarcRecordStatus.TempError, found.Status);
        Assert.Single(dns.Questions);

        dns = new FakeDns().Failing("_dmarc.example.com");
        found = await new DmarcEvaluator(dns).DiscoverAsync("sub.example.com");
        Assert.Equal(DmarcRecordStatus.TempError, found.Status);
        Assert.Equal("example.com", found.RecordDomain);
    }

    [Fact]
    public async Task NxDomainEverywhereIsNotFound()
    {
        var dns = new FakeDns();
        var found = await new DmarcEvaluator(dns).DiscoverAsync("a.example.com");
        Assert.Equal(DmarcRecordStatus.NotFound, found.Status);
        Assert.Equal(["TXT _dmarc.a.example.com", "TXT _dmarc.example.com"], dns.Questions);
    }

    [Fact]
    public async Task NoFallbackFromTheOrganizationalDomainOrAPublicSuffix()
    {
        var dns = new FakeDns();
        Assert.Equal(DmarcRecordStatus.NotFound, (await new DmarcEvaluator(dns).DiscoverAsync("example.com")).Status);
        Assert.Equal(DmarcRecordStatus.NotFound, (await new DmarcEvaluator(dns).DiscoverAsync("github.io")).Status);
        Assert.Equal(["TXT _dmarc.example.com", "TXT _dmarc.github.io"], dns.Questions);
    }

    [Fact]
    public async Task PrivateSuffixCustomersDoNotInheritTheHostsRecord()
    {
        var dns = new FakeDns().Txt("_dmarc.github.io", "v=DMARC1; p=reject");
        var found = await new DmarcEvaluator(dns).DiscoverAsync("www.alice.github.io");
        Assert.Equal(DmarcRecordStatus.NotFound, found.Status);
        Assert.Equal(["TXT _dmarc.www.alice.github.io", "TXT _dmarc.alice.github.io"], dns.Questions);
    }

    [Theory]
    [InlineData("v=DMARC1; p=bob", DmarcRecordStatus.Invalid)]
    [InlineData("v=DMARC1", DmarcRecordStatus.Invalid)]
    [InlineData("v=DMARC1; p=reject; sp=bob", DmarcRecordStatus.Invalid)]
    [InlineData("v=DMARC1; rua=mailto:dmarc@example.com", DmarcRecordStatus.Found)]
    [InlineData("v=DMARC1; p=bob; rua=mailto:dmarc@example.com", DmarcRecordStatus.Found)]
    [InlineData("v=DMARC1; rua=not-a-uri", DmarcRecordStatus.Invalid)]
    public async Task InvalidPolicyIsUsableOnlyWithAReportAddress(string record, DmarcRecordStatus status)
    {
        // RFC 7489 §6.6.3 step 6.
        var dns = new FakeDns().Txt("_dmarc.example.com", record);
        Assert.Equal(status, (await new DmarcEvaluator(dns).DiscoverAsync("example.com")).Status);
    }

    [Fact]
    public async Task UnicodeAuthorDomainsAreAskedInALabels()
    {
        var dns = new FakeDns().Txt("_dmarc.xn--85x722f.xn--55qx5d.cn", "v=DMARC1; p=reject");
        var found = await new DmarcEvaluator(dns).DiscoverAsync("WWW.食狮.公司.cn");
        Assert.Equal(DmarcRecordStatus.Found, found.Status);
        Assert.Equal(["TXT _dmarc.www.xn--85x722f.xn--55qx5d.cn", "TXT _dmarc.xn--85x722f.xn--55qx5d.cn"], dns.Questions);
    }

    [Fact]
    public async Task InvalidNamesAreRefused()
    {
        var evaluator = new DmarcEvaluator(new FakeDns());
        await Assert.ThrowsAsync<ArgumentException>(() => evaluator.DiscoverAsync("mac...com"));
        await Assert.ThrowsAsync<ArgumentException>(() => evaluator.DiscoverAsync("[192.0.2.1]"));
    }
}
