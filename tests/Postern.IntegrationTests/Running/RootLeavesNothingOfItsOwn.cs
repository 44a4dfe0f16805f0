using Postern.IntegrationTests.CrashSafety;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Storage;

namespace Postern.IntegrationTests.Running;

/// <summary>
/// Issue 11 item 5: `serve` started as root binds its port, then runs as the data directory's owner;
/// every verb run as root acts as that owner (as Postfix's postqueue and postdrop do), so no
/// root-owned file is ever left where the server reads as its own user. Before, a `user add` as
/// root made a passwd the server could not read (correct passwords got 535) and `queue hold` as root
/// left a root-owned control.lock.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class RootLeavesNothingOfItsOwn
{
    private const string Password = "rooted-password-1";

    [Fact]
    public async Task ServeAsRootRunsAsTheOwnerAndVerbsAsRootLeaveItsFiles()
    {
        var postern = SystemUsers.Postern;
        var data = SystemUsers.DataDirectoryOwnedBy(postern);
        using var server = await PosternProcess.StartAsync(data, TimeSpan.FromSeconds(60), dll: SystemUsers.WorldReadablePosternDll);

        // The process gave up root once its port was bound: real, effective, saved and file-system uid.
        var status = await File.ReadAllLinesAsync($"/proc/{server.Id}/status");
        Assert.Equal($"Uid:\t{postern.Uid}\t{postern.Uid}\t{postern.Uid}\t{postern.Uid}", status.Single(l => l.StartsWith("Uid:", StringComparison.Ordinal)));
        Assert.Equal($"Gid:\t{postern.Gid}\t{postern.Gid}\t{postern.Gid}\t{postern.Gid}", status.Single(l => l.StartsWith("Gid:", StringComparison.Ordinal)));
        Assert.Equal(DataDirectory.Mode, File.GetUnixFileMode(data));

        var config = Path.Combine(Path.GetDirectoryName(data)!, $"postern-{server.Port}.json");
        var add = await SystemUsers.RunVerbAsync(Password + "\n", "user", "add", "owner@example.test", "--password-stdin", "--config", config);
        Assert.True(add.ExitCode == 0, add.ToString());
        var hold = await SystemUsers.RunVerbAsync("", "queue", "hold", "D24HSRZH1SYA", "--config", config);
        Assert.True(hold.ExitCode is 0 or 1, hold.ToString());
        Assert.True(File.Exists(Path.Combine(data, "queue", "control.lock")), hold.ToString());

        // Nothing in the data directory is root's: not the passwd file, not the commands' lock.
        var rootOwned = Directory.EnumerateFileSystemEntries(data, "*", SearchOption.AllDirectories)
            .Where(p => FileStatus.Of(p) is { Uid: 0 } or { Gid: 0 }).ToList();
        Assert.True(rootOwned.Count == 0, "root-owned: " + string.Join(", ", rootOwned));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(data, "passwd")));

        // The server (as postern) reads the passwd file root's `user add` wrote: the right password is accepted.
        await Task.Delay(TimeSpan.FromSeconds(1)); // ReloadingFile looks every 500 ms
        await using var c = await RawSmtp.OpenAsync(server.Port, host: server.Host);
        await c.StartTlsAsync();
        await c.CommandAsync("EHLO client.example", 250);
        var reply = await c.AuthPlainAsync("owner@example.test", Password);
        Assert.True(reply.StartsWith("235", StringComparison.Ordinal), $"{reply}\n{server.Output}");

        // And `queue release` as root still works on the lock `queue hold` made.
        var release = await SystemUsers.RunVerbAsync("", "queue", "release", "D24HSRZH1SYA", "--config", config);
        Assert.DoesNotContain("denied", release.Err, StringComparison.OrdinalIgnoreCase);
        Assert.True(release.ExitCode is 0 or 1, release.ToString());
    }

    [Fact]
    public async Task AVerbAsRootMakesAMissingDataDirectoryForTheConfiguredUser()
    {
        var postern = SystemUsers.Postern;
        var parent = Path.GetDirectoryName(SystemUsers.DataDirectoryOwnedBy(postern))!;
        var data = Path.Combine(parent, "fresh");
        var config = Path.Combine(parent, "fresh.json");
        await WriteConfigAsync(config, data, user: "postern");
        var add = await SystemUsers.RunVerbAsync(Password + "\n", "user", "add", "first@example.test", "--password-stdin", "--config", config);
        Assert.True(add.ExitCode == 0, add.ToString());
        Assert.Equal(postern.Uid, FileStatus.Of(data)!.Value.Uid);
        Assert.Equal(postern.Uid, FileStatus.Of(Path.Combine(data, "passwd"))!.Value.Uid);
    }

    [Fact]
    public async Task ADataDirectoryOfAnotherUserThanUserIsRefusedNamingBoth()
    {
        var data = SystemUsers.DataDirectoryOwnedBy(UnixUser.ById(0)!);
        var config = Path.Combine(Path.GetDirectoryName(data)!, "other.json");
        await WriteConfigAsync(config, data, user: SystemUsers.Postern.Name);
        var check = await SystemUsers.RunVerbAsync("", "config", "check", "--config", config);
        Assert.True(check.ExitCode == 2, check.ToString());
        Assert.Contains($"User: the data directory {data} belongs to root, not to postern (give it over with: chown -R postern: {data})", check.Err, StringComparison.Ordinal);
        var serve = await SystemUsers.RunVerbAsync("", "serve", "--config", config);
        Assert.True(serve.ExitCode == 2, serve.ToString());
        Assert.Contains("belongs to root, not to postern", serve.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServeAsRootIsRefusedWhenItWouldStayRootUnlessUserSaysSo()
    {
        // A data directory made with a plain `mkdir` as root: serve would keep running as root.
        var data = SystemUsers.DataDirectoryOwnedBy(UnixUser.ById(0)!);
        var config = Path.Combine(Path.GetDirectoryName(data)!, "rootly.json");
        await WriteConfigAsync(config, data);
        var serve = await SystemUsers.RunVerbAsync("", "serve", "--config", config);
        Assert.True(serve.ExitCode == 2, serve.ToString());
        Assert.Contains($"postern: cannot start: User: the server would run as root (the data directory {data} belongs to root); give it a user of its own", serve.Err, StringComparison.Ordinal);
        var check = await SystemUsers.RunVerbAsync("", "config", "check", "--config", config);
        Assert.True(check.ExitCode == 2, check.ToString());
        Assert.Contains("User: the server would run as root", check.Err, StringComparison.Ordinal);

        // "User": "root" says it is meant: the check passes.
        await WriteConfigAsync(config, data, user: "root");
        var meant = await SystemUsers.RunVerbAsync("", "config", "check", "--config", config);
        Assert.True(meant.ExitCode == 0, meant.ToString());
    }

    [Fact]
    public async Task AConfigurationFileTheServersUserCannotReadIsAnError()
    {
        var postern = SystemUsers.Postern;
        var data = SystemUsers.DataDirectoryOwnedBy(postern);
        var config = Path.Combine(Path.GetDirectoryName(data)!, "secret.json");
        await WriteConfigAsync(config, data);
        File.SetUnixFileMode(config, UnixFileMode.UserRead | UnixFileMode.UserWrite); // root's alone
        var check = await SystemUsers.RunVerbAsync("", "config", "check", "--config", config);
        Assert.True(check.ExitCode == 2, check.ToString());
        Assert.Contains($"--config: the server's user cannot read it: postern cannot read {config} (mode 0600, owner root", check.Err, StringComparison.Ordinal);
        Assert.Contains($"chgrp postern {config} && chmod 0640 {config}", check.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AVerbAnOrdinaryUserMayNotRunSaysSoInOneLine()
    {
        var postern = SystemUsers.Postern;
        var data = SystemUsers.DataDirectoryOwnedBy(postern);
        var config = Path.Combine(Path.GetDirectoryName(data)!, "nobody.json");
        await WriteConfigAsync(config, data);
        // postern's data directory is 0700 until a server makes it 0711; as nobody, `queue list` cannot look in.
        var list = await SystemUsers.RunVerbAsAsync("nobody", "", "queue", "list", "--config", config);
        Assert.True(list.ExitCode == 2, list.ToString());
        Assert.DoesNotContain("Unhandled exception", list.Err, StringComparison.Ordinal);
        Assert.EndsWith("(run it as root or as the server's user)", list.Err.Trim(), StringComparison.Ordinal);
        Assert.Single(list.Err.Trim().Split('\n'));
    }

    [Fact]
    public async Task RootsSendmailNeverWritesThroughALinkTheDataDirectorysUserPlaced()
    {
        // Found in review: root's sendmail made and chmod-ed DATA/maildrop by path, so the data
        // directory's user (postern, say, after a break-in) could send root's file or mode anywhere.
        var postern = SystemUsers.Postern;
        var data = SystemUsers.DataDirectoryOwnedBy(postern);
        var config = Path.Combine(Path.GetDirectoryName(data)!, "drop.json");
        await WriteConfigAsync(config, data);
        var victim = Path.Combine(Path.GetDirectoryName(data)!, "victim");
        Directory.CreateDirectory(victim);
        File.SetUnixFileMode(victim, (UnixFileMode)0b111_101_101);

        // No maildrop yet: root does not make one (the server does, at start).
        var missing = await SystemUsers.RunVerbAsync("Subject: x\n\nhi\n", "sendmail", "--config", config, "postmaster@example.test");
        Assert.True(missing.ExitCode == 75, missing.ToString());
        Assert.False(Directory.Exists(Path.Combine(data, "maildrop")));

        // A link where the maildrop should be: refused, nothing written there, no mode changed.
        File.CreateSymbolicLink(Path.Combine(data, "maildrop"), victim);
        var linked = await SystemUsers.RunVerbAsync("Subject: x\n\nhi\n", "sendmail", "--config", config, "postmaster@example.test");
        Assert.True(linked.ExitCode == 75, linked.ToString());
        Assert.Contains("symbolic link", linked.Err, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(victim));
        Assert.Equal((UnixFileMode)0b111_101_101, File.GetUnixFileMode(victim));

        // A real folder that is not as the server makes it (root's, 0755): refused too.
        File.Delete(Path.Combine(data, "maildrop"));
        Directory.CreateDirectory(Path.Combine(data, "maildrop"));
        var wrong = await SystemUsers.RunVerbAsync("Subject: x\n\nhi\n", "sendmail", "--config", config, "postmaster@example.test");
        Assert.True(wrong.ExitCode == 75, wrong.ToString());
        Assert.Contains("is not as the server makes it", wrong.Err, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(data, "maildrop")));
    }

    /// <summary>The smallest configuration for <paramref name="data"/>: one mx listener on a port the system picks, a generated certificate.</summary>
    private static Task WriteConfigAsync(string config, string data, string? user = null) => File.WriteAllTextAsync(config, $$"""
        { "Hostname": "mx.example.test", "DataDirectory": "{{data}}", "Domains": ["example.test"]{{(user is null ? "" : $", \"User\": \"{user}\"")}},
          "Listeners": [ { "Name": "mx", "Endpoint": "127.0.0.1:0", "Role": "mx" } ], "Tls": { "Generate": true } }
        """);
}
