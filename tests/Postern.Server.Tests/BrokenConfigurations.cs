using Postern.Server.Configuration;

namespace Postern.Server.Tests;

/// <summary>
/// STYLE: broken configurations get one folder each with the error they must produce.
/// BrokenConfigs/CASE/postern.json is refused, and the message holds every line of
/// BrokenConfigs/CASE/expected-error.txt (which names the key at fault). Relative paths in a case
/// resolve against the case's own folder, as they would next to a real postern.json.
/// </summary>
public sealed class BrokenConfigurations
{
    private static string Folder => RepositoryFiles.Under("tests/Postern.Server.Tests/BrokenConfigs");

    private static List<string> CaseNames() =>
        Directory.GetDirectories(Folder).Select(d => Path.GetFileName(d)).Order(StringComparer.Ordinal).ToList();

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var name in CaseNames())
        {
            data.Add(name);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void IsRefusedNamingTheKey(string name)
    {
        var dir = Path.Combine(Folder, name);
        var expected = ExpectedLines(dir);
        var e = Assert.Throws<ConfigurationException>(() =>
            ConfigurationLoader.Load(Path.Combine(dir, "postern.json"), dev: false, environment: RepositoryFiles.NoEnvironment));
        foreach (var line in expected)
        {
            Assert.True(e.Message.Contains(line, StringComparison.Ordinal), $"expected the error to contain \"{line}\", it is:{Environment.NewLine}{e.Message}");
        }
    }

    [Fact]
    public void EveryCaseHasAConfigurationAndAnExpectedError()
    {
        var names = CaseNames();
        Assert.True(names.Count >= 13, $"only {names.Count} broken configurations");
        foreach (var name in names)
        {
            var dir = Path.Combine(Folder, name);
            Assert.True(File.Exists(Path.Combine(dir, "postern.json")), $"{name}: no postern.json");
            Assert.NotEmpty(ExpectedLines(dir));
        }
    }

    [Fact]
    public void TheCasesDifferFromAConfigurationThatLoads()
    {
        // The cases are the valid base below with one thing broken; if the base stopped loading, every
        // case would pass for the wrong reason.
        var file = RepositoryFiles.WriteConfig("""
            {
              "Hostname": "mail.example.com",
              "DataDirectory": "data",
              "Domains": ["example.com"],
              "Listeners": [
                { "Name": "mx", "Endpoint": "127.0.0.1:2525", "Role": "mx" },
                { "Name": "submission", "Endpoint": "127.0.0.1:2587", "Role": "submission" }
              ],
              "Tls": { "Generate": true }
            }
            """);
        var options = ConfigurationLoader.Load(file, dev: false, RepositoryFiles.NoEnvironment);
        Assert.Equal(2, options.Listeners.Count);
    }

    [Fact]
    public void MalformedJsonSaysWhere()
    {
        // SPEC §2: a bad configuration says why. For a JSON syntax error the useful "why" is where:
        // the parser knows the line, and the message should pass it on.
        var file = Path.Combine(Folder, "malformed-json", "postern.json");
        var e = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(file, dev: false, RepositoryFiles.NoEnvironment));
        var withoutPath = e.Message.Replace(file, "FILE", StringComparison.Ordinal);
        Assert.True(withoutPath.Contains("line", StringComparison.OrdinalIgnoreCase), $"the error does not say where the JSON is broken: {e.Message}");
    }

    private static List<string> ExpectedLines(string dir) =>
        File.ReadAllLines(Path.Combine(dir, "expected-error.txt")).Where(l => l.Trim().Length > 0).ToList();
}
