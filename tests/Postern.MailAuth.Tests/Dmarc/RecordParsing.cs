using Postern.MailAuth.Dmarc;

namespace Postern.MailAuth.Tests.Dmarc;

/// <summary>
/// DMARC record syntax (RFC 7489 §6.3, §6.4), including OpenDMARC's test_dmarc_parse.c cases as the
/// conformance README restates them: its "OK" records parse without problems; its "errors" parse
/// with a problem listed, and only a bad p= (or sp=) makes the record unusable.
/// </summary>
public sealed class RecordParsing
{
    [Theory]
    [InlineData("v=DMARC1; p=none; rf=afrf; rua=mailto:dmarc-a@abuse.example; ruf=mailto:dmarc-f@abuse.example", DmarcPolicy.None)]
    [InlineData("v=DMARC1; p=none;", DmarcPolicy.None)]
    [InlineData("v=DMARC1; p=reject;", DmarcPolicy.Reject)]
    [InlineData("v=DMARC1; p=quarantine;", DmarcPolicy.Quarantine)]
    [InlineData("v=DMARC1; p=n;", DmarcPolicy.None)]
    [InlineData("v=DMARC1; p=none; rua=ftp://abuse.example", DmarcPolicy.None)]
    [InlineData("v=DMARC1; p=none; ruf=mailto://abuse.example", DmarcPolicy.None)]
    [InlineData("v=DMARC1; p=none; ruf=mailto://abuse.example; foo=bar; buzz=happy;", DmarcPolicy.None)]
    [InlineData("v=DMARC1;p=REJECT", DmarcPolicy.Reject)]
    [InlineData("v = DMARC1 ; p = quarantine ; ", DmarcPolicy.Quarantine)]
    [InlineData("V=DMARC1; P=Reject", DmarcPolicy.Reject)]
    [InlineData("v=DMARC1; sp=none; p=reject", DmarcPolicy.Reject)]
    public void CleanRecords(string text, DmarcPolicy policy)
    {
        var record = DmarcRecord.Parse(text);
        Assert.NotNull(record);
        Assert.Empty(record.Problems);
        Assert.True(record.HasValidPolicy);
        Assert.Equal(policy, record.Policy);
    }

    [Theory]
    [InlineData("")]
    [InlineData("V=BOB")]
    [InlineData("v=spf1 -all")]
    [InlineData("p=reject; v=DMARC1")]
    [InlineData("v=dmarc1; p=reject")]
    [InlineData("v=DMARC10; p=reject")]
    [InlineData("v=DMARC1p=reject")]
    [InlineData("xv=DMARC1; p=reject")]
    public void NotADmarcRecord(string text)
    {
        // RFC 7489 §6.6.3 steps 2 and 4: such TXT records are discarded, as if absent.
        Assert.False(DmarcRecord.IsDmarcRecord(text));
        Assert.Null(DmarcRecord.Parse(text));
    }

    [Theory]
    [InlineData("v=DMARC1; p=bob;")]
    [InlineData("v=DMARC1; pct=100;")]
    [InlineData("v=DMARC1")]
    [InlineData("v=DMARC1; p=")]
    [InlineData("v=DMARC1; p=none; sp=bob;")]
    public void UnusablePolicy(string text)
    {
        var record = DmarcRecord.Parse(text);
        Assert.NotNull(record);
        Assert.False(record.HasValidPolicy);
        Assert.NotEmpty(record.Problems);
    }

    [Theory]
    [InlineData("v=DMARC1; p=none; adkim=bob;", "adkim")]
    [InlineData("v=DMARC1; p=none; aspf=bob;", "aspf")]
    [InlineData("v=DMARC1; p=none; rf=bob;", "rf")]
    [InlineData("v=DMARC1; p=none; ri=bob;", "ri")]
    [InlineData("v=DMARC1; p=none; pct=500;", "pct")]
    [InlineData("v=DMARC1; p=none; rf=000000000000000000000000000000000", "rf")]
    [InlineData("v=DMARC1; p=none; fo=2", "fo")]
    [InlineData("v=DMARC1; p=none; pct=-1", "pct")]
    [InlineData("v=DMARC1; p=none; ri=4294967296", "ri")]
    [InlineData("v=DMARC1; p=none; rua=not a uri", "rua")]
    [InlineData("v=DMARC1; p=none; np=bob", "np")]
    [InlineData("v=DMARC1; p=none; p=reject", "p")]
    public void BadOptionalValueFallsBackToItsDefault(string text, string tag)
    {
        // RFC 7489 §6.3: "syntax errors in the remainder of the record SHOULD be discarded in favor of default values".
        var record = DmarcRecord.Parse(text);
        Assert.NotNull(record);
        Assert.True(record.HasValidPolicy);
        Assert.Equal(DmarcPolicy.None, record.Policy);
        Assert.Contains(record.Problems, p => p.StartsWith(tag + "=", StringComparison.Ordinal));
        Assert.Equal(100, record.Percent);
        Assert.Equal(AlignmentMode.Relaxed, record.DkimAlignment);
        Assert.Equal(AlignmentMode.Relaxed, record.SpfAlignment);
        Assert.Equal(86400u, record.ReportInterval);
        Assert.Equal(["afrf"], record.ReportFormats);
        Assert.Equal(["0"], record.FailureReportingOptions);
        Assert.Null(record.NonExistentSubdomainPolicy);
    }

    [Fact]
    public void Defaults()
    {
        var record = DmarcRecord.Parse("v=DMARC1; p=quarantine")!;
        Assert.Null(record.SubdomainPolicy);
        Assert.False(record.SubdomainPolicyInvalid);
        Assert.Equal(100, record.Percent);
        Assert.Equal(AlignmentMode.Relaxed, record.DkimAlignment);
        Assert.Equal(AlignmentMode.Relaxed, record.SpfAlignment);
        Assert.Empty(record.AggregateReportUris);
        Assert.Empty(record.FailureReportUris);
        Assert.Equal(86400u, record.ReportInterval);
    }

    [Fact]
    public void EveryTag()
    {
        var record = DmarcRecord.Parse(
            "v=DMARC1; p=reject; sp=quarantine; np=none; pct=25; adkim=s; aspf=S; " +
            "rua=mailto:agg@example.com!10m, mailto:agg2@example.net; ruf=mailto:fail@example.com!512; " +
            "fo=1:d:S; rf=afrf; ri=3600")!;
        Assert.Empty(record.Problems);
        Assert.Equal(DmarcPolicy.Reject, record.Policy);
        Assert.Equal(DmarcPolicy.Quarantine, record.SubdomainPolicy);
        Assert.Equal(DmarcPolicy.None, record.NonExistentSubdomainPolicy);
        Assert.Equal(25, record.Percent);
        Assert.Equal(AlignmentMode.Strict, record.DkimAlignment);
        Assert.Equal(AlignmentMode.Strict, record.SpfAlignment);
        Assert.Equal(2, record.AggregateReportUris.Count);
        Assert.Equal("mailto:agg@example.com", record.AggregateReportUris[0].Uri.OriginalString);
        Assert.Equal(10UL << 20, record.AggregateReportUris[0].MaxSize);
        Assert.Null(record.AggregateReportUris[1].MaxSize);
        Assert.Equal(512UL, record.FailureReportUris[0].MaxSize);
        Assert.Equal(["1", "d", "s"], record.FailureReportingOptions);
        Assert.Equal(3600u, record.ReportInterval);
    }

    [Fact]
    public void ValidReportAddressesSurviveInvalidOnes()
    {
        var record = DmarcRecord.Parse("v=DMARC1; rua=bogus, mailto:dmarc@example.com")!;
        Assert.False(record.HasValidPolicy);
        Assert.Single(record.AggregateReportUris);
        Assert.Contains(record.Problems, p => p.StartsWith("rua=", StringComparison.Ordinal));
        Assert.Contains("p= is missing", record.Problems);
    }

    [Theory]
    [InlineData("n", DmarcPolicy.None)]
    [InlineData("q", DmarcPolicy.Quarantine)]
    [InlineData("quar", DmarcPolicy.Quarantine)]
    [InlineData("r", DmarcPolicy.Reject)]
    [InlineData("REJ", DmarcPolicy.Reject)]
    public void PolicyMayBeAbbreviated(string value, DmarcPolicy policy) =>
        Assert.Equal(policy, DmarcRecord.Parse($"v=DMARC1; p={value}")!.Policy);

    [Theory]
    [InlineData("rejected")]
    [InlineData("nonee")]
    [InlineData("x")]
    [InlineData("none reject")]
    public void OnlyPrefixesOfThePolicyWordsCount(string value) =>
        Assert.Null(DmarcRecord.Parse($"v=DMARC1; p={value}")!.Policy);
}
