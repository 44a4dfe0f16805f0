using Postern.MailAuth.PublicSuffix;
using Postern.Protocol.Tests.Conformance;

namespace Postern.MailAuth.Tests.PublicSuffix;

/// <summary>The list shipped in the assembly is the one from dmarc/publicsuffix/, licence and all.</summary>
public sealed class EmbeddedList
{
    [Fact]
    public void IsTheConformanceCopyByteForByte()
    {
        using var stream = typeof(PublicSuffixList).Assembly.GetManifestResourceStream(PublicSuffixList.EmbeddedResourceName);
        Assert.NotNull(stream);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        var expected = File.ReadAllBytes(ConformanceFiles.File("dmarc", "publicsuffix", "public_suffix_list.dat"));
        Assert.Equal(expected, copy.ToArray());
    }

    [Fact]
    public void ShipsWithItsLicenceAndNotice()
    {
        var folder = Path.Combine(SourceRoot(), "src", "Postern.MailAuth", "PublicSuffix");
        Assert.Equal(
            File.ReadAllText(ConformanceFiles.File("dmarc", "publicsuffix", "LICENSE")),
            File.ReadAllText(Path.Combine(folder, "LICENSE")));
        var notice = File.ReadAllText(Path.Combine(folder, "NOTICE.md"));
        Assert.Contains("publicsuffix/list", notice, StringComparison.Ordinal);
        Assert.Contains("Mozilla Public License", notice, StringComparison.Ordinal);
        Assert.Contains("MPL-2.0", File.ReadAllText(Path.Combine(folder, "..", "Postern.MailAuth.csproj")), StringComparison.Ordinal);
    }

    [Fact]
    public void HoldsBothSections()
    {
        var all = PublicSuffixList.Embedded;
        var icann = PublicSuffixList.LoadEmbedded(PublicSuffixSections.Icann);
        Assert.Equal(PublicSuffixSections.All, all.Sections);
        Assert.True(all.RuleCount > 9000, $"{all.RuleCount} rules");
        Assert.True(icann.RuleCount > 5000 && icann.RuleCount < all.RuleCount, $"{icann.RuleCount} ICANN rules of {all.RuleCount}");
    }

    private static string SourceRoot([System.Runtime.CompilerServices.CallerFilePath] string path = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", "..", ".."));
}
