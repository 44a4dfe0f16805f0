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
            s.Recipients[0].Status = RecipientStatus.Deferred;
            s.Recipients[0].Attempts = 3;
            s.Recipients[0].LastAttempt = received.AddMinutes(25);
            s.Recipients[0].NextAttempt = next;
            s.Recipients[0].Detail = "451 4.7.1 greylisted, try again later";
            s.Recipients[1].Status = RecipientStatus.Bounced;
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
        // The remote replies interpreted, with what to do (issue 6).
        Assert.Contains("           meaning: greylisting", show.Out, StringComparison.Ordinal);
        Assert.Contains("(greylisted)\n           advice:  nothing to do: Postern retries", show.Out.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.Contains("           meaning: the receiving server says this mailbox does not exist there", show.Out, StringComparison.Ordinal);
        Assert.Contains("(unknown_user)", show.Out, StringComparison.Ordinal);
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
        Assert.Equal("greylisted", carol.GetProperty("Diagnosis").GetString());
        Assert.Contains("Delivery.RetryInitialDelay", carol.GetProperty("Advice").GetString(), StringComparison.Ordinal);
        var dave = root.GetProperty("Recipients")[1];
        Assert.Equal("unknown_user", dave.GetProperty("Diagnosis").GetString());
        Assert.Contains("does not exist", dave.GetProperty("Meaning").GetString(), StringComparison.Ordinal);
        // Nothing to interpret for a recipient that has not failed.
        Assert.Equal(JsonValueKind.Null, root.GetProperty("Recipients")[2].GetProperty("Diagnosis").ValueKind);
    }

    [Fact]
    public async Task ShowExplainsARealDeferralFromPostfix()
    {
        // Postfix (127.0.0.38) refuses the recipient for now with a blocklist reply; Postern defers it.
        const string address = "127.0.0.38";
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?>
        {
            ["pf.test"] = DnsServer.Zone("pf.test", $"""
                @        IN MX 10 mx.pf.test.
                mx       IN A   {address}
                """),
        });
        await using var postfix = await PostfixPeer.StartAsync(address, "pf.test", "someone");
        await postfix.SetRecipientAccessAsync(("someone@pf.test", "450 4.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.spamhaus.org"));
        await using var server = await TestServer.StartAsync(o =>
        {
            o.Relay.TrustedNetworks = ["127.0.0.0/8"];
            o.Dns.Servers = [dns.Server];
            o.Delivery.RemotePort = postfix.EndPoint.Port;
        });
        string id;
        await using (var c = await RawSmtp.OpenAsync(server.MxPort))
        {
            await c.CommandAsync("MAIL FROM:<app@origin.test>", 250);
            await c.CommandAsync("RCPT TO:<someone@pf.test>", 250);
            await c.CommandAsync("DATA", 354);
            id = (await c.CommandAsync("From: app@origin.test\r\nSubject: listed\r\nMessage-ID: <l1@origin.test>\r\n\r\nhello\r\n.", 250)).Split(' ')[^1];
        }
        await server.WaitForLogAsync("event=delivery", $"queue_id={id}", "status=deferred", "blocked using zen.spamhaus.org");
        await QueueSeed.WaitForAsync(() => QueueSeed.State(server.DataDir, new QueueId(id))?.Recipients[0].Status == RecipientStatus.Deferred, "the deferral in queue/state");

        using var cli = PosternCli.WithConfig(dataDirectory: server.DataDir);
        var show = await cli.RunAsync("queue", "show", id);
        Assert.True(show.ExitCode == 0, show.ToString());
        Assert.Contains("To:        <someone@pf.test>  deferred: 450 4.7.1 <someone@pf.test>: Recipient address rejected: Service unavailable; Client host [192.0.2.7] blocked using zen.spamhaus.org",
            show.Out, StringComparison.Ordinal);
        Assert.Contains("           meaning: the receiving server refuses mail from this server's address (192.0.2.7) because a blocklist names it (zen.spamhaus.org)", show.Out, StringComparison.Ordinal);
        Assert.Contains("           advice:  run `postern diag dnsbl 192.0.2.7`", show.Out, StringComparison.Ordinal);

        var json = JsonDocument.Parse((await cli.RunAsync("queue", "show", id, "--json")).Out).RootElement.GetProperty("Recipients")[0];
        Assert.Equal("deferred", json.GetProperty("Status").GetString());
        Assert.Equal("blocklisted", json.GetProperty("Diagnosis").GetString());
        Assert.Contains("Relay.Smarthost", json.GetProperty("Advice").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SummaryCountsWaitingRecipientsByDomainAndAge()
    {
        var now = DateTimeOffset.UtcNow;
        QueueSeed.Message(_data, "alice@example.test", ["carol@peer.test", "dave@peer.test"], now.AddMinutes(-2));
        QueueSeed.Message(_data, "alice@example.test", ["erin@other.test"], now.AddMinutes(-7));
        QueueSeed.Message(_data, "alice@example.test", ["frank@peer.test", "bob@example.test"], now.AddHours(-3), s =>
        {
            s.Recipients[0].Status = RecipientStatus.Deferred;
            s.Recipients[1].Status = RecipientStatus.Delivered; // delivered: no longer counted
        });
        QueueSeed.Message(_data, "alice@example.test", ["gina@peer.test", "hank@Other.Test"], now.AddDays(-2), s => s.Recipients[0].Status = RecipientStatus.Bounced);
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
            s.Recipients[0].Status = RecipientStatus.Deferred;
            s.Recipients[1].Status = RecipientStatus.Delivered;
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
