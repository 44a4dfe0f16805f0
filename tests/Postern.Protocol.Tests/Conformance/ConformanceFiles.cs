namespace Postern.Protocol.Tests.Conformance;

/// <summary>
/// Finds the public conformance suites: $POSTERN_CONFORMANCE, else the repository's own copy in
/// tests/conformance (each suite with its licence; its README names origin and version). A missing
/// suite fails the test, never skips it.
/// </summary>
public static class ConformanceFiles
{
    public static string Root
    {
        get
        {
            var fromEnv = Environment.GetEnvironmentVariable("POSTERN_CONFORMANCE");
            if (!string.IsNullOrEmpty(fromEnv))
            {
                return Directory.Exists(fromEnv) ? fromEnv : throw new DirectoryNotFoundException($"POSTERN_CONFORMANCE={fromEnv} does not exist");
            }
            // From the test binaries up, then from this source file up (builds may sit outside the tree).
            foreach (var start in new[] { AppContext.BaseDirectory, SourceDirectory() })
            {
                for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                {
                    var candidate = Path.Combine(dir.FullName, "tests", "conformance");
                    if (System.IO.File.Exists(Path.Combine(candidate, "README.md")))
                    {
                        return candidate;
                    }
                }
            }
            throw new DirectoryNotFoundException("the conformance suites (tests/conformance in the repository) were not found; set POSTERN_CONFORMANCE");
        }
    }

    private static string SourceDirectory([System.Runtime.CompilerServices.CallerFilePath] string path = "") =>
        Path.GetDirectoryName(path) ?? "/";

    public static string File(params string[] parts) => Path.Combine([Root, .. parts]);
}
