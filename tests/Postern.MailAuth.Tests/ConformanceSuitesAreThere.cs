using Postern.Protocol.Tests.Conformance;

namespace Postern.MailAuth.Tests;

/// <summary>The suites issue 5 must pass are where the README of ../shared/conformance says.</summary>
public sealed class ConformanceSuitesAreThere
{
    [Theory]
    [InlineData("spf/openspf/rfc7208-tests.yml")]
    [InlineData("dmarc/publicsuffix/public_suffix_list.dat")]
    [InlineData("dmarc/publicsuffix/tests.txt")]
    [InlineData("dkim/dkimpy/test.message")]
    public void Present(string path) => Assert.True(File.Exists(Path.Combine(ConformanceFiles.Root, path)), path);
}
