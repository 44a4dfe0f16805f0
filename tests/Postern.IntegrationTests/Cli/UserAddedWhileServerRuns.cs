using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Cli;

/// <summary>
/// SPEC §1 and §4: `postern user` works while the server runs, and the running server notices: the
/// passwd file is re-read when it changes, no restart.
/// </summary>
public sealed class UserAddedWhileServerRuns
{
    private const string Password = "new-user-password-1";

    private static async Task<string> AuthOnSubmissionAsync(TestServer server, string user, string password)
    {
        await using var c = await RawSmtp.OpenAsync(server.SubmissionPort);
        await c.StartTlsAsync();
        await c.CommandAsync("EHLO x", 250);
        return await c.AuthPlainAsync(user, password);
    }

    /// <summary>The server looks at the file at most every 500 ms (ReloadingFile.CheckInterval): wait past that, then try once (a failure counts toward the lockout).</summary>
    private static async Task<string> AuthSoonAsync(TestServer server, string user, string password)
    {
        await Task.Delay(TimeSpan.FromSeconds(1));
        return await AuthOnSubmissionAsync(server, user, password);
    }

    [Fact]
    public async Task AUserAddedByTheCliCanAuthenticateAtOnce()
    {
        await using var server = await TestServer.StartAsync();
        using var cli = PosternCli.WithConfig(dataDirectory: server.DataDir);

        // The server has read the passwd file already (alice works, the new user does not exist yet).
        Assert.StartsWith("235 2.7.0", await AuthOnSubmissionAsync(server, "alice@example.test", TestServer.AlicePassword), StringComparison.Ordinal);
        Assert.False(server.Server.Accounts.Exists("carol@example.test"));

        var add = await cli.RunWithInputAsync(Password + "\n", "user", "add", "carol@example.test", "--password-stdin");
        Assert.True(add.ExitCode == 0, add.ToString());
        Assert.Contains("carol@example.test:{ARGON2ID}$argon2id$", await File.ReadAllTextAsync(Path.Combine(server.DataDir, "passwd")), StringComparison.Ordinal);

        var reply = await AuthSoonAsync(server, "carol@example.test", Password);
        Assert.True(reply.StartsWith("235 2.7.0", StringComparison.Ordinal), $"AUTH after `user add` answered: {reply}\nLog:\n{server.Logs}");
    }

    [Fact]
    public async Task ADeletedUserCanNoLongerAuthenticate()
    {
        await using var server = await TestServer.StartAsync();
        using var cli = PosternCli.WithConfig(dataDirectory: server.DataDir);
        Assert.StartsWith("235 2.7.0", await AuthOnSubmissionAsync(server, "bob@example.test", TestServer.BobPassword), StringComparison.Ordinal);

        var del = await cli.RunAsync("user", "del", "bob@example.test");
        Assert.True(del.ExitCode == 0, del.ToString());

        var reply = await AuthSoonAsync(server, "bob@example.test", TestServer.BobPassword);
        Assert.True(reply.StartsWith("535 5.7.8", StringComparison.Ordinal), $"AUTH after `user del` answered: {reply}");
    }

    [Fact]
    public async Task ANewPasswordTakesEffectAndTheOldOneStops()
    {
        await using var server = await TestServer.StartAsync();
        using var cli = PosternCli.WithConfig(dataDirectory: server.DataDir);
        Assert.StartsWith("235 2.7.0", await AuthOnSubmissionAsync(server, "alice@example.test", TestServer.AlicePassword), StringComparison.Ordinal);

        // The argon2id hash has the same length, so only the file's time tells the server it changed.
        var passwd = await cli.RunWithInputAsync("alice-password-2\n", "user", "passwd", "alice@example.test", "--password-stdin");
        Assert.True(passwd.ExitCode == 0, passwd.ToString());

        var reply = await AuthSoonAsync(server, "alice@example.test", "alice-password-2");
        Assert.True(reply.StartsWith("235 2.7.0", StringComparison.Ordinal), $"AUTH with the new password answered: {reply}");
        Assert.StartsWith("535 5.7.8", await AuthOnSubmissionAsync(server, "alice@example.test", TestServer.AlicePassword), StringComparison.Ordinal);
    }
}
