using System.Collections;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.Server.Accounts;
using Postern.Server.Configuration;

namespace Postern.Server.Tests;

/// <summary>
/// SPEC §4: aliases are re-read when they change, no restart. They live in the configuration file, so
/// the server reloads that file; the reload must read it the way start-up did (`--dev` included).
/// </summary>
public sealed class AliasesReloadFromTheConfigurationFile
{
    private const string OneAlias = """
        "Aliases": { "sales@example.test": ["alice@example.test"] }
        """;

    private const string TwoAliases = """
        "Aliases": { "sales@example.test": ["alice@example.test"], "info@example.test": ["alice@example.test"] }
        """;

    private static async Task<IReadOnlyCollection<string>> AliasesAfterEditAsync(string before, string after, bool dev)
    {
        var file = RepositoryFiles.WriteConfig(before);
        var data = Path.Combine(Path.GetDirectoryName(file)!, "data");
        var options = ConfigurationLoader.Load(file, dev, new Hashtable { ["POSTERN_DATA"] = data });
        await using var server = new PosternServer(options, NullLogger.Instance, configFile: file, dev: dev);
        Assert.Equal(["sales@example.test"], server.Aliases!.Value.Keys);

        // A different modification time even on coarse file systems, then a look past the check interval.
        await Task.Delay(TimeSpan.FromSeconds(1.1));
        await File.WriteAllTextAsync(file, after);
        await Task.Delay(ReloadingFile<Dictionary<string, List<string>>>.CheckInterval + TimeSpan.FromMilliseconds(100));
        server.Aliases.Refresh();
        return server.Aliases.Value.Keys;
    }

    [Fact]
    public async Task AnAliasAddedToTheFileIsKnownWithoutRestart()
    {
        const string head = """
            { "Hostname": "mail.example.test", "DataDirectory": "data", "Domains": ["example.test"],
              "Listeners": [ { "Endpoint": "127.0.0.1:0" } ], "Tls": { "Generate": true },
            """;
        var keys = await AliasesAfterEditAsync(head + OneAlias + "}", head + TwoAliases + "}", dev: false);
        Assert.Contains("info@example.test", keys);
    }

    [Fact]
    public async Task UnderDevAnAliasAddedToTheFileIsKnownWithoutRestart()
    {
        // `postern serve --dev --config FILE`: the file only adds to the embedded defaults, so it does not
        // validate on its own. The reload must layer it over the --dev defaults as start-up did.
        var keys = await AliasesAfterEditAsync("{" + OneAlias + "}", "{" + TwoAliases + "}", dev: true);
        Assert.Contains("info@example.test", keys);
    }
}
