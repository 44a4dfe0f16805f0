using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;
using Postern.Server.Filters.Milter;

namespace Postern.IntegrationTests.Filters;

/// <summary>
/// A milter process that accepts connections, reads everything and never answers (a hung filter):
/// on real time, each session gets its default action within the milter's timeout, tempfail or
/// accept, and the sessions after it are not held up by it.
/// </summary>
public sealed class AMilterThatNeverAnswers : IAsyncLifetime
{
    private const string SilentScript = """
        import socket, sys, threading
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(sys.argv[1]); s.listen(16)
        def drain(c):
            while c.recv(65536):
                pass
        while True:
            c, _ = s.accept()
            threading.Thread(target=drain, args=(c,), daemon=True).start()
        """;

    private readonly string _dir = Directory.CreateTempSubdirectory("postern-silent-").FullName;
    private PeerProcess? _peer;

    private string Socket => Path.Combine(_dir, "silent.sock");

    public async Task InitializeAsync() =>
        _peer = await PeerProcess.StartAsync(MilterPeers.Command("/usr/bin/python3", "-c", SilentScript, Socket), "python3", () => File.Exists(Socket), $"make {Socket}");

    public async Task DisposeAsync()
    {
        if (_peer is not null)
        {
            await _peer.StopAsync();
        }
        Directory.Delete(_dir, recursive: true);
    }

    private Milter Silent(MilterDefaultAction action) =>
        new(new MilterOptions { Name = "silent", Address = "unix:" + Socket, CommandTimeout = TimeSpan.FromSeconds(1), DefaultAction = action }, TimeProvider.System, NullLogger.Instance);

    [Fact]
    public async Task EachSessionGetsItsTempfailWithinTheTimeout()
    {
        var milter = Silent(MilterDefaultAction.Tempfail);
        for (var i = 0; i < 2; i++)
        {
            var watch = Stopwatch.StartNew();
            await using var chain = MilterChain.Open([milter], $"s{i}", submission: false);
            var verdict = await chain.ConnectAsync("client.example.org", MilterPeers.Client).WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(MilterVerdictKind.TempFail, verdict.Kind);
            Assert.Equal("451 4.7.1 Service unavailable - try again later", verdict.Reply!.ToString());
            Assert.Contains("no answer to", verdict.Detail);
            Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(10));
            Assert.True(milter.IsDown);
        }
    }

    [Fact]
    public async Task WithDefaultAcceptTheSessionGoesOnWithoutIt()
    {
        var milter = Silent(MilterDefaultAction.Accept);
        await using var chain = MilterChain.Open([milter], "s1", submission: false);
        var watch = Stopwatch.StartNew();
        Assert.Equal(MilterVerdictKind.Continue, (await chain.ConnectAsync(null, MilterPeers.Client).WaitAsync(TimeSpan.FromSeconds(20))).Kind);
        Assert.Equal(MilterVerdictKind.Continue, (await chain.MailAsync("a@example.org", [])).Kind);
        Assert.Equal(MilterVerdictKind.Continue, (await chain.RcptAsync("b@example.com", [])).Kind);
        var message = MilterPeers.Message("a@example.org", "b@example.com", "hi", "hello\n");
        var split = message.AsSpan().IndexOf("\r\n\r\n"u8) + 4;
        var result = await chain.DataAsync(message.AsMemory(0, split), () => new MemoryStream(message, split, message.Length - split), () => new MemoryStream(), 1 << 20);
        Assert.Equal(MilterVerdictKind.Continue, result.Verdict.Kind);
        Assert.Empty(result.Modifications);
        // One timeout for the whole session: after it the milter is not asked again.
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(10));
    }
}
