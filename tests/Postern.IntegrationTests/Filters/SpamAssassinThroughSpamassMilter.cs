using System.Net;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Filters.Milter;

namespace Postern.IntegrationTests.Filters;

/// <summary>
/// SpamAssassin's spamd (Debian's spamd, a private instance on a loopback port, local tests only)
/// behind spamass-milter on a unix socket, driven through <see cref="MilterSession"/> directly:
/// GTUBE is refused at the end of message with spamass-milter's own reply, a clean message comes
/// back with SpamAssassin's X-Spam-* header fields as changes.
/// </summary>
public sealed class SpamAssassinThroughSpamassMilter(SpamAssassinThroughSpamassMilter.Peers peers) : IClassFixture<SpamAssassinThroughSpamassMilter.Peers>
{
    [Fact]
    public async Task GtubeIsRefusedWithSpamassMiltersReply()
    {
        var message = MilterPeers.Message("alice@example.org", "bob@example.com", "Cheap offers", $"Hello,\n\n{MilterPeers.Gtube}\n");
        var (result, _) = await MilterPeers.PassAsync(peers.Milter, "alice@example.org", "bob@example.com", message);
        Assert.True(result.Verdict.Kind == MilterVerdictKind.Reject, $"{result.Verdict} {peers.Output}");
        // spamass-milter's smfi_setreply("550", "5.7.1", "Blocked by SpamAssassin"), as -C and -R leave it.
        Assert.Equal(550, result.Verdict.Reply!.Code);
        Assert.Equal("5.7.1", result.Verdict.Reply.Enhanced);
        Assert.Contains("Blocked by SpamAssassin", result.Verdict.Reply.Text);
    }

    [Fact]
    public async Task ACleanMessageGetsSpamAssassinsHeaders()
    {
        var message = MilterPeers.Message("alice@example.org", "bob@example.com", "Lunch on Thursday",
            "Hi Bob,\n\nare we still on for lunch on Thursday at noon? The usual place.\n\nAlice\n");
        var (result, _) = await MilterPeers.PassAsync(peers.Milter, "alice@example.org", "bob@example.com", message);
        Assert.True(result.Verdict.Kind is MilterVerdictKind.Continue or MilterVerdictKind.Accept, $"{result.Verdict} {peers.Output}");
        var added = result.Modifications
            .Select(m => m switch
            {
                MilterModification.AddHeader a => (a.Name, a.Value),
                MilterModification.InsertHeader i => (i.Name, i.Value),
                MilterModification.ChangeHeader c => (c.Name, c.Value),
                _ => (Name: "", Value: ""),
            })
            .Where(h => h.Name.Length > 0)
            .ToDictionary(h => h.Name, h => h.Value, StringComparer.OrdinalIgnoreCase);
        Assert.True(added.ContainsKey("X-Spam-Status"), string.Join("; ", result.Modifications));
        Assert.StartsWith("No, score=", added["X-Spam-Status"]);
        Assert.Contains("X-Spam-Checker-Version", added.Keys);
        Assert.DoesNotContain(result.Modifications, m => m is MilterModification.ReplaceBody);
    }

    /// <summary>spamd and spamass-milter, started once for the class.</summary>
    public sealed class Peers : IAsyncLifetime
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("postern-spamass-").FullName;
        private PeerProcess? _spamd;
        private PeerProcess? _milterProcess;

        public Milter Milter { get; private set; } = null!;

        public string Output => $"spamd: {_spamd?.Output}\nspamass-milter: {_milterProcess?.Output}";

        public async Task InitializeAsync()
        {
            var port = Ports.Free(IPAddress.Loopback);
            // -L: local tests only (no DNS blocklists: the test machine has no Internet); -x: no per-user
            // configuration; one child is enough. spamd compiles its rules at start: give it a minute.
            _spamd = await PeerProcess.StartAsync(MilterPeers.Command("/usr/sbin/spamd",
                    "--listen", $"127.0.0.1:{port}", "-L", "-x", "--max-children", "1", "--syslog", "stderr",
                    "--pidfile", Path.Combine(_dir, "spamd.pid"), "-u", "debian-spamd"),
                "spamd", () => Ports.IsListening(new IPEndPoint(IPAddress.Loopback, port)), $"listen on 127.0.0.1:{port}", timeoutMs: 60_000);
            var socket = Path.Combine(_dir, "spamass.sock");
            // -r 15: refuse from 15 points (GTUBE has 1000); spamc's flags after --: the private spamd.
            _milterProcess = await PeerProcess.StartAsync(MilterPeers.Command("/usr/sbin/spamass-milter",
                    "-p", socket, "-r", "15", "--", "-d", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                "spamass-milter", () => File.Exists(socket), $"make {socket}");
            Milter = MilterPeers.MilterAt("spamassassin", "unix:" + socket);
        }

        public async Task DisposeAsync()
        {
            if (_milterProcess is not null)
            {
                await _milterProcess.StopAsync();
            }
            if (_spamd is not null)
            {
                await _spamd.StopAsync();
            }
            Directory.Delete(_dir, recursive: true);
        }
    }
}
