using Postern.Fuzz;

namespace Postern.Protocol.Tests.Properties;

/// <summary>
/// Every checked-in fuzz input, fuzz/corpus/TARGET/* and fuzz/regressions/TARGET/*, run through its
/// target's own code (fuzz/Postern.Fuzz), so that the corpora stay green and a crash that a fuzzer
/// once found, saved as a regression file, stays fixed.
/// </summary>
public sealed class FuzzCorpusReplays
{
    public static TheoryData<string, string> Inputs()
    {
        var data = new TheoryData<string, string>();
        foreach (var folder in new[] { "corpus", "regressions" })
        {
            foreach (var target in FuzzTargets.All.Keys)
            {
                var dir = Path.Combine(FuzzFolder.Root, folder, target);
                if (!Directory.Exists(dir))
                {
                    continue;
                }
                foreach (var file in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
                {
                    data.Add(target, Path.GetRelativePath(FuzzFolder.Root, file));
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Inputs))]
    public void InputKeepsTheTargetsInvariants(string target, string file) =>
        FuzzTargets.All[target](File.ReadAllBytes(Path.Combine(FuzzFolder.Root, file)));

    [Fact]
    public void EveryTargetHasASeedCorpusAndNoStrayFolder()
    {
        foreach (var target in FuzzTargets.All.Keys)
        {
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(FuzzFolder.Root, "corpus", target)));
        }
        // A folder with no target behind it would never be replayed.
        foreach (var folder in new[] { "corpus", "regressions" })
        {
            foreach (var dir in Directory.GetDirectories(Path.Combine(FuzzFolder.Root, folder)))
            {
                Assert.Contains(Path.GetFileName(dir), FuzzTargets.All.Keys);
            }
        }
    }
}

/// <summary>The repository's fuzz/ folder, found from the test binaries or from this source file.</summary>
internal static class FuzzFolder
{
    public static string Root { get; } = Find();

    private static string Find([System.Runtime.CompilerServices.CallerFilePath] string source = "")
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Path.GetDirectoryName(source) ?? "/" })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "fuzz");
                if (Directory.Exists(Path.Combine(candidate, "corpus")))
                {
                    return candidate;
                }
            }
        }
        throw new DirectoryNotFoundException("fuzz/corpus was not found above the test binaries or the test sources");
    }
}
