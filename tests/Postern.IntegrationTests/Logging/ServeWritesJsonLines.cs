using System.Text.Json;
using Postern.IntegrationTests.CrashSafety;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Logging;

/// <summary>`postern serve` with Logging.Format json and Logging.Level from its configuration file: what a shipper reads on standard output.</summary>
public sealed class ServeWritesJsonLines
{
    [Fact]
    public async Task EveryLineOnStandardOutputIsAJsonObject()
    {
        var root = TestServer.NewDataDir();
        var data = Path.Combine(root, "data");
        Directory.CreateDirectory(data);
        await File.WriteAllTextAsync(Path.Combine(data, "passwd"), "");
        using var server = await PosternProcess.StartAsync(data, TimeSpan.FromSeconds(30), new Dictionary<string, object>
        {
            ["Logging"] = new { Level = "debug", Format = "json" },
        });
        await using (var c = await RawSmtp.OpenAsync(server.Port, host: server.Host))
        {
            await c.CommandAsync("MAIL FROM:<someone@client.example>", 250);
            await c.CommandAsync("RCPT TO:<friend@far.example>", 554);
            await c.CommandAsync("QUIT", 221);
        }
        var deadline = Environment.TickCount64 + 10_000;
        while (!server.Output.Contains("\"reason\":\"relay_denied\"", StringComparison.Ordinal) && Environment.TickCount64 < deadline)
        {
            await Task.Delay(20);
        }
        var lines = server.Output.Split('\n').Where(l => l.Length > 0 && !l.StartsWith("stderr: ", StringComparison.Ordinal)).ToList();
        var events = lines.Select(l =>
        {
            using var doc = JsonDocument.Parse(l);
            return doc.RootElement.GetProperty("event").GetString();
        }).ToList();
        Assert.Contains("started", events);
        Assert.Contains("connect", events);
        Assert.Contains("disconnect", events);
        var rejected = Assert.Single(lines, l => l.Contains("\"event\":\"rejected\"", StringComparison.Ordinal));
        Assert.Contains("\"reason\":\"relay_denied\"", rejected, StringComparison.Ordinal);
        try
        {
            Directory.Delete(root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
