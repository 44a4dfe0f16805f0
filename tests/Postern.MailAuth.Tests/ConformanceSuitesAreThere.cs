using Postern.Protocol.Tests.Conformance;

namespace Postern.MailAuth.Tests;

/// <summary>The suites the tests read are in the repository (tests/conformance), each with its licence.</summary>
public sealed class ConformanceSuitesAreThere
{
    [Theory]
    [InlineData("spf/openspf/rfc7208-tests.yml")]
    [InlineData("dmarc/publicsuffix/public_suffix_list.dat")]
    [InlineData("dmarc/publicsuffix/tests.txt")]
    [InlineData("dkim/dkimpy/test.message")]
    public void Present(string path) => Assert.True(File.Exists(Path.Combine(ConformanceFiles.Root, path)), path);

    /// <summary>A clone has nothing beside it: the suites are found inside the repository, in tests/conformance.</summary>
    [Fact]
    public void ReadFromTheRepositorysOwnCopy()
    {
        Assert.Null(Environment.GetEnvironmentVariable("POSTERN_CONFORMANCE"));
        Assert.Equal("conformance", Path.GetFileName(ConformanceFiles.Root));
        Assert.Equal("tests", Path.GetFileName(Path.GetDirectoryName(ConformanceFiles.Root)));
    }

    [Theory]
    [InlineData("spf/openspf")]
    [InlineData("spf/mail-auth")]
    [InlineData("dkim/mail-auth")]
    [InlineData("dkim/dkimpy")]
    [InlineData("dkim/mail-dkim")]
    [InlineData("dmarc/publicsuffix")]
    [InlineData("address-syntax/isemail")]
    [InlineData("address-syntax/json-schema-test-suite")]
    public void EachSuiteHasItsLicence(string suite) =>
        Assert.Contains(Directory.EnumerateFiles(Path.Combine(ConformanceFiles.Root, suite)),
            f => Path.GetFileName(f).Contains("licen", StringComparison.OrdinalIgnoreCase));
}
