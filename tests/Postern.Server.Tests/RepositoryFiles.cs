using System.Collections;
using System.Reflection;

namespace Postern.Server.Tests;

/// <summary>Files of the source tree the tests read (docs, checked-in configurations), and temp files they write.</summary>
internal static class RepositoryFiles
{
    private static readonly Lazy<string> RootDirectory = new(() =>
    {
        // The binaries are usually under the tree (bin/); with --artifacts-path they are not, and the
        // project folder recorded at build time (see the csproj) leads back to it.
        var sourceDirectory = typeof(RepositoryFiles).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "PosternTestSourceDirectory")?.Value;
        foreach (var start in new[] { AppContext.BaseDirectory, sourceDirectory })
        {
            for (var dir = start is null ? null : new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(System.IO.Path.Combine(dir.FullName, "Postern.slnx")))
                {
                    return dir.FullName;
                }
            }
        }
        throw new InvalidOperationException($"no Postern.slnx above {AppContext.BaseDirectory} or {sourceDirectory}");
    });

    /// <summary>The folder holding Postern.slnx.</summary>
    public static string Root => RootDirectory.Value;

    /// <summary>A path in the repository, given with '/' separators.</summary>
    public static string Under(string relative) => System.IO.Path.Combine(Root, relative.Replace('/', System.IO.Path.DirectorySeparatorChar));

    /// <summary>An environment with nothing in it, so that the machine's POSTERN_ variables cannot change a test.</summary>
    public static IDictionary NoEnvironment => new Hashtable();

    /// <summary>Writes <paramref name="json"/> as postern.json in a new temp folder and returns its full path.</summary>
    public static string WriteConfig(string json)
    {
        var dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "postern-config-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var file = System.IO.Path.Combine(dir, "postern.json");
        File.WriteAllText(file, json);
        return file;
    }

    /// <summary>A configuration that loads without error: the base the override tests change one thing of.</summary>
    public const string ValidConfig = """
        {
          "Hostname": "mail.example.com",
          "DataDirectory": "data",
          "Domains": ["example.com"],
          "Listeners": [
            { "Name": "mx", "Endpoint": "192.0.2.1:25", "Role": "mx" },
            { "Name": "submission", "Endpoint": "192.0.2.1:587", "Role": "submission" }
          ],
          "Tls": { "Generate": true }
        }
        """;
}
