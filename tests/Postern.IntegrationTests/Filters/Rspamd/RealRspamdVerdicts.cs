using System.Diagnostics;
using System.Net;
using System.Text;
using Postern.Protocol.Replies;
using Postern.Server.Configuration;
using Postern.Server.Filters.Rspamd;

namespace Postern.IntegrationTests.Filters.Rspamd;

/// <summary>One private rspamd for the class: started once, stopped at the end.</summary>
public sealed class RspamdInstance : IAsyncLifetime
{
    internal RspamdPeer Peer { get; private set; } = null!;

    public async Task InitializeAsync() => Peer = await RspamdPeer.StartAsync();

    public async Task DisposeAsync() => await Peer.DisposeAsync();
}

/// <summary>
/// <see cref="RspamdClient"/> against a real rspamd (Debian's package, issue 13): GTUBE refused with
/// rspamd's own reject, a clean message accepted with X-Spam-* fields, a score and rspamd's header
/// changes, the envelope and Settings-ID reaching rspamd, and a stopped rspamd unavailable at once.
/// </summary>
public sealed class RealRspamdVerdicts(RspamdInstance rspamd) : IClassFixture<RspamdInstance>
{
    private const string Gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

    private static byte[] Message(string body, string to = "b@example.org", string subject = "hello there") => Encoding.ASCII.GetBytes(
        "From: a@example.com\r\n" +
        $"To: {to}\r\n" +
        $"Subject: {subject}\r\n" +
        "Message-ID: <20261207.1@example.com>\r\n" +
        "Date: Mon, 7 Dec 2026 20:00:00 +0000\r\n" +
        "\r\n" +
        body + "\r\n");

    private static RspamdRequest Request(ListenerRole role = ListenerRole.Mx, params string[] recipients) => new()
    {
        Role = role,
        // TEST-NET-1: not one of rspamd's local networks, so it applies its rules (and milter_headers) in full.
        ClientAddress = IPAddress.Parse("192.0.2.7"),
        ClientHostname = "mail.example.net",
        Helo = "mail.example.net",
        MailFrom = "a@example.com",
        Recipients = recipients.Length == 0 ? ["b@example.org"] : recipients,
        QueueId = "QID" + Guid.NewGuid().ToString("N")[..10].ToUpperInvariant(),
        User = role == ListenerRole.Mx ? null : "alice@example.com",
    };

    private RspamdClient Client(Action<RspamdOptions>? change = null)
    {
        var options = new RspamdOptions { Url = rspamd.Peer.Url };
        change?.Invoke(options);
        return new RspamdClient(options, "mx.example.org", TimeProvider.System);
    }

    private async Task<RspamdVerdict> ScanAsync(RspamdClient client, RspamdRequest request, byte[] message)
    {
        var v = await client.CheckAsync(request, new MemoryStream(message), message.Length, CancellationToken.None);
        Assert.True(v.Kind != RspamdVerdictKind.Unavailable, $"rspamd unavailable: {v.Detail}\n{rspamd.Peer.Output}");
        return v;
    }

    [Fact]
    public async Task GtubeIsRefusedWithRspamdsReject()
    {
        using var client = Client();
        var v = await ScanAsync(client, Request(), Message(Gtube));
        Assert.Equal(RspamdVerdictKind.Reject, v.Kind);
        Assert.Equal(new SmtpReply(554, "5.7.1", "Gtube pattern"), v.Reply);
        Assert.Contains(v.Result!.Symbols, s => s.Name == "GTUBE");
        Assert.StartsWith("rspamd=reject action=\"reject\" score=", v.Summary, StringComparison.Ordinal);
        Assert.Contains("GTUBE(", v.Summary, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ACleanMessageFromTheSpoolFileIsAcceptedWithXSpamFieldsAndAScore()
    {
        using var client = Client();
        var file = Path.Combine(Path.GetTempPath(), $"postern-rspamd-{Guid.NewGuid():N}.eml");
        await File.WriteAllBytesAsync(file, Message("Just a normal message about lunch tomorrow."));
        var request = Request();
        RspamdVerdict v;
        try
        {
            v = await client.CheckFileAsync(request, file, CancellationToken.None);
        }
        finally
        {
            File.Delete(file);
        }
        Assert.True(v.Kind == RspamdVerdictKind.Accept, $"{v.Kind}: {v.Summary}\n{rspamd.Peer.Output}");
        Assert.Null(v.Reply);
        var fields = v.AddHeaders.ToDictionary(h => h.Name, h => h.Value);
        var score = v.Result!.Score.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal($"No, score={score} required=15.00", fields["X-Spam-Status"]);
        Assert.Equal(score, fields["X-Spam-Score"]);
        Assert.Equal("no action", fields["X-Spam-Action"]);
        // rspamd's default rules score a message of a client with no resolvable names.
        Assert.NotEmpty(v.Result.Symbols);
        Assert.Contains("(", fields["X-Spam-Symbols"], StringComparison.Ordinal);
        // rspamd's own changes (milter_headers): the Queue-Id we sent comes back in its field.
        Assert.Equal(request.QueueId, fields["X-Rspamd-Queue-Id"]);
        Assert.Contains("X-Spamd-Bar", fields.Keys);
        Assert.Contains(new RspamdHeaderRemoval("X-Spam", 0), v.RemoveHeaders);
        Assert.Contains(new RspamdHeaderRemoval("X-Spam-Status", 0), v.RemoveHeaders);
        Assert.All(v.AddHeaders, h => Assert.DoesNotContain('\n', h.Value.Replace("\r\n\t", "", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task EveryRecipientReachesRspamd()
    {
        using var client = Client();
        var message = Message("Minutes of the meeting attached below, see you all next week.", to: "b@example.org, c@example.org");
        var both = await ScanAsync(client, Request(ListenerRole.Mx, "b@example.org", "c@example.org"), message);
        var one = await ScanAsync(client, Request(ListenerRole.Mx, "b@example.org"), message);
        // rspamd compares the To: field with the envelope: all of it only when both Rcpt values arrived.
        Assert.Contains(both.Result!.Symbols, s => s.Name == "TO_MATCH_ENVRCPT_ALL");
        Assert.DoesNotContain(one.Result!.Symbols, s => s.Name == "TO_MATCH_ENVRCPT_ALL");
    }

    [Fact]
    public async Task TheSettingsIdChoosesRspamdsRulesPerRole()
    {
        using var client = Client(o =>
        {
            o.SettingsIdMx = RspamdPeer.AddHeaderSettings;
            o.SettingsIdSubmission = RspamdPeer.RewriteSettings;
            o.CheckSubmission = true;
        });
        var mx = await ScanAsync(client, Request(), Message("Quarterly numbers are in the shared folder."));
        Assert.Equal(RspamdVerdictKind.Accept, mx.Kind);
        Assert.Equal(RspamdAction.AddHeader, mx.Result!.Action);
        Assert.StartsWith("Yes, score=", mx.AddHeaders.Single(h => h.Name == "X-Spam-Status").Value, StringComparison.Ordinal);

        var submission = await ScanAsync(client, Request(ListenerRole.Submission), Message("Quarterly numbers are in the shared folder."));
        Assert.Equal(RspamdVerdictKind.RewriteSubject, submission.Kind);
        Assert.Equal("*** SPAM *** hello there", submission.NewSubject);
    }

    [Fact]
    public async Task AStoppedRspamdIsUnavailableAtOnce()
    {
        await using var own = await RspamdPeer.StartAsync();
        using var closed = new RspamdClient(new RspamdOptions { Url = own.Url }, null, TimeProvider.System);
        using var open = new RspamdClient(new RspamdOptions { Url = own.Url, FailOpen = true }, null, TimeProvider.System);
        var message = Message("Just a normal message about lunch tomorrow.");
        var before = await closed.CheckAsync(Request(), new MemoryStream(message), message.Length, CancellationToken.None);
        Assert.True(before.Kind == RspamdVerdictKind.Accept, $"{before.Kind}: {before.Detail}\n{own.Output}");

        await own.StopAsync();
        var clock = Stopwatch.StartNew();
        var down = await closed.CheckAsync(Request(), new MemoryStream(message), message.Length, CancellationToken.None);
        var failOpen = await open.CheckAsync(Request(), new MemoryStream(message), message.Length, CancellationToken.None);
        clock.Stop();

        Assert.Equal(RspamdVerdictKind.Unavailable, down.Kind);
        Assert.Equal(new SmtpReply(451, "4.7.1", "Service unavailable - try again later"), down.Reply);
        Assert.True(down.OutageStarted);
        Assert.Contains("refused", down.Detail, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(RspamdVerdictKind.Unavailable, failOpen.Kind);
        Assert.Null(failOpen.Reply);
        // Refused connections fail at once, far inside Rspamd.Timeout (15 s).
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }
}
