using System.Globalization;
using System.Text.Json;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Cli;

/// <summary>
/// `postern queue show` explains each recipient: the last attempt, the remote reply, the next attempt
/// and why (SPEC §6); `postern queue summary` counts what waits per destination domain and age, as
/// Postfix's qshape does.
/// </summary>
public sealed class QueueShowAndSummary : IDisposable
{
    private readonly string _data = TestServer.NewDataDir();

    public void Dispose()
    {
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static string Time(DateTimeOffset t) => t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    [Fact]
    public async Task ShowExplainsEachRecipient()
    {
        var received = DateTimeOffset.UtcNow.AddMinutes(-30);
        var next = DateTimeOffset.UtcNow.AddMinutes(20);
        var id = QueueSeed.Message(_data, "alice@example.test", ["carol@peer.test", "dave@peer.test", "bob@example.test"], received, s =>
        {
            s.Recipients[0].Status = "deferred";
            s.Recipients[0].Attempts = 3;
            s.Recipients[0].LastAttempt = received.AddMinutes(25);
            s.Recipients[0].NextAttempt = next;
            s.Recipients[0].Detail = "451 4.7.1 greylisted, try again later";
            s.Recipients[1].Status = "bounced";
            s.Recipients[1].LastAttempt = received.AddMinutes(1);
            s.Recipients[1].Detail = "550 5.1.1 no such user";
        });
        using var cli = PosternCli.WithConfig(dataDirectory: _data);

        var show = await cli.RunAsync("queue", "show", id.Value);
        Assert.True(show.ExitCode == 0, show.ToString());
        var expires = Time(received.AddDays(5));
        Assert.Contains("State:     deferred", show.Out, StringComparison.Ordinal);
        Assert.Contains($"To:        <carol@peer.test>  deferred: 451 4.7.1 greylisted, try again later", show.Out, StringComparison.Ordinal);
        Assert.Contains($"attempt 3 at {Time(received.AddMinutes(25))} failed with a temporary error; the next at {Time(next)} (", show.Out, StringComparison.Ordinal);
        Assert.Contains("the wait doubles from Delivery.RetryInitialDelay 5m up to Delivery.RetryMaxDelay 4h); " +
            $"the message bounces if still undelivered at {expires}", show.Out, StringComparison.Ordinal);
        Assert.Contains("To:        <dave@peer.test>  bounced: 550 5.1.1 no such user", show.Out, StringComparison.Ordinal);
        Assert.Contains("failed permanently; the bounce goes to <alice@example.test> when the server next takes the message", show.Out, StringComparison.Ordinal);
        Assert.Contains("To:        <bob@example.test>  pending", show.Out, StringComparison.Ordinal);
        Assert.Contains("waiting for local delivery", show.Out, StringComparison.Ordinal);

        using (var hold = PosternCli.WithConfig(dataDirectory: _data))
        {
            Assert.Equal(0, (await hold.RunAsync("queue", "hold", id.Value)).ExitCode);
        }
        var json = await cli.RunAsync("queue", "show", id.Value, "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        var root = JsonDocument.Parse(json.Out).RootElement;
        Assert.Equal("held", root.GetProperty("State").GetString());
        Assert.True(root.GetProperty("Held").GetBoolean());
        var carol = root.GetProperty("Recipients")[0];
        Assert.Equal("deferred", carol.GetProperty("Status").GetString());
        Assert.Equal(3, carol.GetProperty("Attempts").GetInt32());
        Assert.Contains("no next attempt while the message is on hold", carol.GetProperty("Explanation").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SummaryCountsWaitingRecipientsByDomainAndAge()
    {
        var now = DateTimeOffset.UtcNow;
        QueueSeed.Message(_data, "alice@example.test", ["carol@peer.test", "dave@peer.test"], now.AddMinutes(-2));
        QueueSeed.Message(_data, "alice@example.test", ["erin@other.test"], now.AddMinutes(-7));
        QueueSeed.Message(_data, "alice@example.test", ["frank@peer.test", "bob@example.test"], now.AddHours(-3), s =>
        {
            s.Recipients[0].Status = "deferred";
            s.Recipients[1].Status = "delivered"; // delivered: no longer counted
        });
        QueueSeed.Message(_data, "alice@example.test", ["gina@peer.test", "hank@Other.Test"], now.AddDays(-2), s => s.Recipients[0].Status = "bounced");
        using var cli = PosternCli.WithConfig(dataDirectory: _data);

        var text = await cli.RunAsync("queue", "summary");
        Assert.True(text.ExitCode == 0, text.ToString());
        var lines = text.Out.Split('\n').Select(l => string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries))).ToList();
        Assert.Equal("T 5 10 20 40 80 160 320 640 1280 1280+", lines[0]);
        Assert.Equal("TOTAL 5 2 1 0 0 0 0 1 0 0 1", lines[1]);
        Assert.Equal("peer.test 3 2 0 0 0 0 0 1 0 0 0", lines[2]);
        Assert.Equal("other.test 2 0 1 0 0 0 0 0 0 0 1", lines[3]);

        var json = await cli.RunAsync("queue", "summary", "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        var root = JsonDocument.Parse(json.Out).RootElement;
        Assert.Equal("recipients", root.GetProperty("Unit").GetString());
        Assert.Equal(["5", "10", "20", "40", "80", "160", "320", "640", "1280", "1280+"], root.GetProperty("AgeMinutes").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal(5, root.GetProperty("Total").GetProperty("Total").GetInt32());
        var domains = root.GetProperty("Domains");
        Assert.Equal("peer.test", domains[0].GetProperty("Domain").GetString());
        Assert.Equal([2, 0, 0, 0, 0, 0, 1, 0, 0, 0], domains[0].GetProperty("Counts").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.Equal("other.test", domains[1].GetProperty("Domain").GetString());
        Assert.Equal(2, domains[1].GetProperty("Total").GetInt32());
    }

    [Fact]
    public async Task SummaryOfAnEmptyQueueIsAllZeros()
    {
        using var cli = PosternCli.WithConfig(dataDirectory: _data);
        var r = await cli.RunAsync("queue", "summary");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("TOTAL     0     0", r.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ListSaysWhatEachMessageWaitsFor()
    {
        var active = QueueSeed.Message(_data, "alice@example.test", ["carol@peer.test"]);
        var deferred = QueueSeed.Message(_data, "alice@example.test", ["dave@peer.test", "bob@example.test"], state: s =>
        {
            s.Recipients[0].Status = "deferred";
            s.Recipients[1].Status = "delivered";
        });
        var held = QueueSeed.Message(_data, "", ["erin@peer.test"], held: true);
        using var cli = PosternCli.WithConfig(dataDirectory: _data);
        var list = await cli.RunAsync("queue", "list");
        Assert.True(list.ExitCode == 0, list.ToString());
        Assert.Contains($"{active}  active  ", list.Out, StringComparison.Ordinal);
        Assert.Contains($"{deferred}  deferred", list.Out, StringComparison.Ordinal);
        Assert.Contains("<alice@example.test> -> <dave@peer.test>\n", list.Out.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.Contains($"{held}  held    ", list.Out, StringComparison.Ordinal);
        Assert.Contains("<> -> <erin@peer.test>", list.Out, StringComparison.Ordinal);
        Assert.Contains("3 message(s)", list.Out, StringComparison.Ordinal);

        var json = JsonDocument.Parse((await cli.RunAsync("queue", "list", "--json")).Out).RootElement;
        Assert.Equal(["active", "deferred", "held"], json.EnumerateArray().Select(e => e.GetProperty("State").GetString()!).ToArray());
        Assert.Equal(["dave@peer.test"], json[1].GetProperty("Recipients").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.True(json[0].GetProperty("Size").GetInt64() > 0);
        Assert.True(json[0].GetProperty("AgeSeconds").GetDouble() >= 0);
    }
}
