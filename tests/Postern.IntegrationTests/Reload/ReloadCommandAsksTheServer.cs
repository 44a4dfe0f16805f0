using System.Text.Json;
using Postern.IntegrationTests.Cli;
using Postern.IntegrationTests.CrashSafety;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Reload;

/// <summary>
/// `postern reload` finds the server running on the data directory, asks it to reload (through
/// DATA/queue/control/) and prints its answer: exit 0 with what changed and what needs a restart,
/// 2 with every error of an invalid file, 1 when no server runs.
/// </summary>
public sealed class ReloadCommandAsksTheServer : IDisposable
{
    private readonly string _folder = TestServer.NewDataDir();

    public void Dispose()
    {
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static Task<CliResult> ReloadAsync(PosternProcess server, params string[] more) =>
        PosternCli.RunRawAsync("", ["reload", "--config", server.ConfigPath, .. more]);

    [Fact]
    public async Task ItPrintsWhatChangedTheErrorsOrThatNoServerRuns()
    {
        var server = await PosternProcess.StartAsync(Path.Combine(_folder, "data"), TimeSpan.FromSeconds(30));
        try
        {
            server.Settings["Domains"] = new[] { "example.test", "new.example" };
            server.Settings["Listeners"] = new[] { new { Name = "mx", Endpoint = $"{server.Host}:{server.Port + 1}", Role = "mx" } };
            server.WriteConfig();
            var ok = await ReloadAsync(server);
            Assert.True(ok.ExitCode == 0, ok.ToString());
            Assert.Contains($"reloaded {server.ConfigPath}", ok.Out, StringComparison.Ordinal);
            Assert.Contains("changed: Domains", ok.Out, StringComparison.Ordinal);
            Assert.Contains("needs a restart (the running value is kept until then): Listeners[0].Endpoint", ok.Out, StringComparison.Ordinal);
            await server.WaitForLineAsync("event=reloaded", "trigger=\"postern reload\"", "changed=Domains");

            var json = await ReloadAsync(server, "--json");
            Assert.True(json.ExitCode == 0, json.ToString());
            var reply = JsonDocument.Parse(json.Out).RootElement;
            Assert.Equal("reloaded", reply.GetProperty("result").GetString());
            Assert.Equal("running", reply.GetProperty("server").GetString());
            Assert.Equal(0, reply.GetProperty("changed").GetArrayLength());
            Assert.Equal("Listeners[0].Endpoint", reply.GetProperty("restart_needed")[0].GetString());

            server.Settings["Limits"] = new { MaxMessageSize = 10, MaxErrors = 0 };
            server.WriteConfig();
            var invalid = await ReloadAsync(server);
            Assert.True(invalid.ExitCode == 2, invalid.ToString());
            Assert.Contains("is not valid; the server keeps the configuration in force", invalid.Err, StringComparison.Ordinal);
            Assert.Contains("Limits.MaxMessageSize:", invalid.Err, StringComparison.Ordinal);
            Assert.Contains("Limits.MaxErrors:", invalid.Err, StringComparison.Ordinal);
            await server.WaitForLineAsync("event=reload_failed", "errors=2");
            Assert.False(server.HasExited, server.Output);
        }
        finally
        {
            server.Dispose();
        }

        var none = await ReloadAsync(server);
        Assert.True(none.ExitCode == 1, none.ToString());
        Assert.Contains("no server is running on", none.Err, StringComparison.Ordinal);
    }
}
