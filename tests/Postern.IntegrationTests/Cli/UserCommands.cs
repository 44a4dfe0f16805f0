using System.Text.Json;
using Postern.Server.Accounts;

namespace Postern.IntegrationTests.Cli;

/// <summary>`postern user add|del|list|passwd` on the passwd file (SPEC §1, §3, §4); exit codes 0/1/2.</summary>
public sealed class UserCommands
{
    private const string Password = "correct-horse-1";

    [Fact]
    public async Task AddStoresAnArgon2idHashNeverThePassword()
    {
        using var cli = PosternCli.WithConfig();
        var r = await cli.RunWithInputAsync(Password + "\n", "user", "add", "x@example.test", "--password-stdin");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("added x@example.test", r.Out, StringComparison.Ordinal);
        var text = await File.ReadAllTextAsync(cli.PasswdFile);
        Assert.StartsWith("x@example.test:{ARGON2ID}$argon2id$", text, StringComparison.Ordinal);
        Assert.DoesNotContain(Password, text, StringComparison.Ordinal);
        Assert.DoesNotContain(Password, r.Out + r.Err, StringComparison.Ordinal);
        Assert.True(await PasswordHasher.VerifyAsync(PasswdFile.Load(cli.PasswdFile)["x@example.test"], Password));
    }

    [Fact]
    public async Task AddingAnExistingUserIsAProblemAndKeepsThePassword()
    {
        using var cli = PosternCli.WithConfig();
        Assert.Equal(0, (await cli.RunWithInputAsync(Password + "\n", "user", "add", "x@example.test", "--password-stdin")).ExitCode);
        var before = await File.ReadAllTextAsync(cli.PasswdFile);

        var again = await cli.RunWithInputAsync("another-password\n", "user", "add", "x@example.test", "--password-stdin");
        Assert.True(again.ExitCode == 1, again.ToString());
        Assert.Contains("already exists", again.Err, StringComparison.Ordinal);

        // Addresses are compared without case: X@Example.TEST is the same account.
        var upper = await cli.RunWithInputAsync("another-password\n", "user", "add", "X@Example.TEST", "--password-stdin");
        Assert.True(upper.ExitCode == 1, upper.ToString());
        Assert.Equal(before, await File.ReadAllTextAsync(cli.PasswdFile));
    }

    [Fact]
    public async Task ListShowsEveryUserInOrder()
    {
        using var cli = PosternCli.WithConfig();
        var empty = await cli.RunAsync("user", "list");
        Assert.True(empty.ExitCode == 0, empty.ToString());
        Assert.Equal("", empty.Out.Trim());

        Assert.Equal(0, (await cli.RunWithInputAsync(Password + "\n", "user", "add", "zed@example.test", "--password-stdin")).ExitCode);
        Assert.Equal(0, (await cli.RunWithInputAsync(Password + "\n", "user", "add", "x@localhost", "--password-stdin")).ExitCode);
        Assert.Equal(0, (await cli.RunWithInputAsync(Password + "\n", "user", "add", "Amy@Example.test", "--password-stdin")).ExitCode);

        var list = await cli.RunAsync("user", "list");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Equal(["amy@example.test", "x@localhost", "zed@example.test"], list.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.DoesNotContain("$argon2id$", list.Out, StringComparison.Ordinal);

        var json = await cli.RunAsync("user", "list", "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        Assert.Equal(["amy@example.test", "x@localhost", "zed@example.test"], JsonSerializer.Deserialize<string[]>(json.Out)!);
    }

    [Fact]
    public async Task PasswdReplacesThePassword()
    {
        using var cli = PosternCli.WithConfig();
        Assert.Equal(0, (await cli.RunWithInputAsync(Password + "\n", "user", "add", "x@example.test", "--password-stdin")).ExitCode);
        var r = await cli.RunWithInputAsync("new-password-2\n", "user", "passwd", "x@example.test", "--password-stdin");
        Assert.True(r.ExitCode == 0, r.ToString());
        var hash = PasswdFile.Load(cli.PasswdFile)["x@example.test"];
        Assert.True(await PasswordHasher.VerifyAsync(hash, "new-password-2"));
        Assert.False(await PasswordHasher.VerifyAsync(hash, Password));
        Assert.Single(PasswdFile.Load(cli.PasswdFile));
    }

    [Fact]
    public async Task PasswdOfAnUnknownUserIsAProblem()
    {
        using var cli = PosternCli.WithConfig();
        var r = await cli.RunWithInputAsync(Password + "\n", "user", "passwd", "nobody@example.test", "--password-stdin");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("no such user", r.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(cli.PasswdFile) && PasswdFile.Load(cli.PasswdFile).ContainsKey("nobody@example.test"));
    }

    [Fact]
    public async Task DelRemovesTheUserAndOnlyThatUser()
    {
        using var cli = PosternCli.WithConfig();
        Assert.Equal(0, (await cli.RunWithInputAsync(Password + "\n", "user", "add", "x@example.test", "--password-stdin")).ExitCode);
        Assert.Equal(0, (await cli.RunWithInputAsync(Password + "\n", "user", "add", "y@example.test", "--password-stdin")).ExitCode);

        var r = await cli.RunAsync("user", "del", "x@example.test");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(["y@example.test"], PasswdFile.Load(cli.PasswdFile).Keys);

        var again = await cli.RunAsync("user", "del", "x@example.test");
        Assert.True(again.ExitCode == 1, again.ToString());
        Assert.Contains("no such user", again.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LinesItDoesNotOwnAreKept()
    {
        // The file is Dovecot's too: comments and extra fields of other users survive an edit.
        using var cli = PosternCli.WithConfig();
        Directory.CreateDirectory(cli.DataDirectory);
        const string other = "bob@example.test:{ARGON2ID}$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA:1000:1000::/home/bob";
        await File.WriteAllTextAsync(cli.PasswdFile, $"# accounts of example.test\n{other}\n");
        Assert.Equal(0, (await cli.RunWithInputAsync(Password + "\n", "user", "add", "x@example.test", "--password-stdin")).ExitCode);
        Assert.Equal(0, (await cli.RunAsync("user", "del", "x@example.test")).ExitCode);
        Assert.Equal($"# accounts of example.test\n{other}\n", await File.ReadAllTextAsync(cli.PasswdFile));
    }

    [Theory]
    [InlineData("not-an-address")]
    [InlineData("x@")]
    [InlineData("x+tag@example.test")]
    [InlineData("../x@example.test")]
    [InlineData("x@[127.0.0.1]")]
    public async Task AnAddressThatCannotBeAnAccountIsAUsageError(string address)
    {
        using var cli = PosternCli.WithConfig();
        var r = await cli.RunWithInputAsync(Password + "\n", "user", "add", address, "--password-stdin");
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Single(r.Err.Trim().Split('\n'));
        Assert.False(File.Exists(cli.PasswdFile));
    }

    [Fact]
    public async Task AnAddressOutsideTheLocalDomainsIsAProblem()
    {
        using var cli = PosternCli.WithConfig();
        var r = await cli.RunWithInputAsync(Password + "\n", "user", "add", "x@elsewhere.example", "--password-stdin");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("elsewhere.example", r.Err, StringComparison.Ordinal);
        Assert.Contains("example.test", r.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(cli.PasswdFile));
    }

    [Theory]
    [InlineData("")]
    [InlineData("\n")]
    [InlineData("seven77\n")]
    public async Task AMissingOrShortPasswordIsAUsageError(string stdin)
    {
        using var cli = PosternCli.WithConfig();
        var r = await cli.RunWithInputAsync(stdin, "user", "add", "x@example.test", "--password-stdin");
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.False(File.Exists(cli.PasswdFile) && PasswdFile.Load(cli.PasswdFile).Count > 0);
    }

    [Fact]
    public async Task EightCharactersAreEnough()
    {
        using var cli = PosternCli.WithConfig();
        var r = await cli.RunWithInputAsync("eight888\n", "user", "add", "x@example.test", "--password-stdin");
        Assert.True(r.ExitCode == 0, r.ToString());
    }

    [Theory]
    [InlineData("user")]
    [InlineData("user", "add")]
    [InlineData("user", "rename", "x@example.test")]
    [InlineData("user", "add", "x@example.test", "--pasword-stdin")]
    public async Task AMalformedCommandIsAUsageError(params string[] args)
    {
        using var cli = PosternCli.WithConfig();
        var r = await cli.RunWithInputAsync(Password + "\n", args);
        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.StartsWith("postern: ", r.Err, StringComparison.Ordinal);
    }
}
