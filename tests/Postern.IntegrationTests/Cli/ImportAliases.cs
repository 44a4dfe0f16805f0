using System.Text.Json;
using Postern.Server.Configuration;

namespace Postern.IntegrationTests.Cli;

/// <summary>`postern import aliases FILE`: Postfix's aliases(5) and virtual(5) tables become Aliases (issue 11 item 9).</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ImportAliases
{
    // As Debian's /etc/aliases grows on a real machine.
    private const string EtcAliases = """
        # See man 5 aliases for format
        postmaster:    root
        MAILER-DAEMON: postmaster
        abuse: postmaster

        # People
        root:	admin,
        	ops@remote.example
        "web.master": root
        backup: |/usr/local/bin/backup-mail
        archive: /var/mail/archive
        lists: :include:/etc/mail/lists
        ops: "|/usr/bin/procmail -m", ops@remote.example
        """;

    private const string Virtual = """
        # /etc/postfix/virtual
        example.net          anything
        sales@example.test   alice@example.test, bob@example.test
        info@example.test    alice@example.test
                             bob@example.test
        @example.org         catchall@example.test
        """;

    private static Dictionary<string, List<string>> Parse(string json) =>
        JsonSerializer.Deserialize<Dictionary<string, List<string>>>(json)!;

    [Fact]
    public async Task AliasesFileBecomesAliasesForTheGivenDomain()
    {
        using var cli = PosternCli.WithConfig();
        var file = Path.Combine(cli.Folder, "aliases");
        await File.WriteAllTextAsync(file, EtcAliases);
        var r = await cli.RunAsync("import", "aliases", file, "--domain", "example.test");
        Assert.True(r.ExitCode == 1, r.ToString()); // some entries could not be converted
        var aliases = Parse(r.Out);
        Assert.Equal(["root@example.test"], aliases["postmaster@example.test"]);
        Assert.Equal(["postmaster@example.test"], aliases["MAILER-DAEMON@example.test"]);
        Assert.Equal(["admin@example.test", "ops@remote.example"], aliases["root@example.test"]); // continuation line
        Assert.Equal(["root@example.test"], aliases["web.master@example.test"]);
        Assert.Equal(["ops@remote.example"], aliases["ops@example.test"]);
        Assert.False(aliases.ContainsKey("backup@example.test"));
        Assert.Contains($"{file}:10: backup@example.test: |/usr/local/bin/backup-mail: a command", r.Err);
        Assert.Contains($"{file}:11: archive@example.test: /var/mail/archive: a file", r.Err);
        Assert.Contains($"{file}:12: lists@example.test: :include:/etc/mail/lists: an include file", r.Err);
        Assert.Contains($"{file}:13: ops@example.test: |/usr/bin/procmail -m: a command", r.Err);
        Assert.Contains("read as aliases(5)", r.Err);
    }

    [Fact]
    public async Task LocalNamesGetEveryDomainByDefault()
    {
        using var cli = PosternCli.WithConfig();
        var file = Path.Combine(cli.Folder, "aliases");
        await File.WriteAllTextAsync(file, "postmaster: root\n");
        var r = await cli.RunAsync("import", "aliases", file);
        Assert.True(r.ExitCode == 0, r.ToString());
        var aliases = Parse(r.Out);
        Assert.Equal(["root@example.test"], aliases["postmaster@example.test"]);
        Assert.Equal(["root@localhost"], aliases["postmaster@localhost"]);
    }

    [Fact]
    public async Task VirtualFileIsToldApartAndItsUnsupportedFormsNamed()
    {
        using var cli = PosternCli.WithConfig();
        var file = Path.Combine(cli.Folder, "virtual");
        await File.WriteAllTextAsync(file, Virtual);
        var r = await cli.RunAsync("import", "aliases", file);
        Assert.Contains("read as virtual(5)", r.Err);
        var aliases = Parse(r.Out);
        Assert.Equal(["alice@example.test", "bob@example.test"], aliases["sales@example.test"]);
        Assert.Equal(["alice@example.test", "bob@example.test"], aliases["info@example.test"]);
        Assert.Equal(2, aliases.Count);
        Assert.Contains($"{file}:2: example.net: declares a virtual alias domain", r.Err);
        Assert.Contains($"{file}:6: @example.org: a catch-all", r.Err);
        // --format says which when the guess would be wrong.
        r = await cli.RunAsync("import", "aliases", file, "--format", "aliases");
        Assert.Contains("read as aliases(5)", r.Err);
    }

    [Fact]
    public async Task WriteMergesIntoTheConfigurationFileKeepingTheRest()
    {
        using var cli = PosternCli.WithConfig(change: c => c["Aliases"] = new Dictionary<string, string[]>
        {
            ["root@example.test"] = ["alice@example.test"],
            ["keep@example.test"] = ["bob@example.test"],
        });
        File.SetUnixFileMode(cli.ConfigFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var file = Path.Combine(cli.Folder, "aliases");
        await File.WriteAllTextAsync(file, "root: admin\npostmaster: root\n");
        var r = await cli.RunAsync("import", "aliases", file, "--domain", "example.test", "--write");
        Assert.True(r.ExitCode == 0, r.ToString());
        var options = ConfigurationLoader.Load(cli.ConfigFile, dev: false);
        Assert.Equal(["alice@example.test", "admin@example.test"], options.Aliases["root@example.test"]);
        Assert.Equal(["bob@example.test"], options.Aliases["keep@example.test"]);
        Assert.Equal(["root@example.test"], options.Aliases["postmaster@example.test"]);
        Assert.Equal("mail.example.test", options.Hostname);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(cli.ConfigFile));
        Assert.Empty(Directory.GetFiles(cli.Folder, ".*.tmp"));
    }
}
