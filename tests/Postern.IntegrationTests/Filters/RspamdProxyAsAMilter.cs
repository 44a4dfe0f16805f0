using System.Net;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Filters.Milter;

namespace Postern.IntegrationTests.Filters;

/// <summary>
/// rspamd (Debian's rspamd) speaking the milter protocol itself through its proxy worker
/// (<c>milter = yes</c>, scanning in the same process with <c>self_scan</c>), a private instance on a
/// loopback port with its own configuration and no Redis: GTUBE is refused with rspamd's reply, a
/// clean message is let through.
/// </summary>
public sealed class RspamdProxyAsAMilter(RspamdProxyAsAMilter.Peer peer) : IClassFixture<RspamdProxyAsAMilter.Peer>
{
    [Fact]
    public async Task GtubeIsRefusedWithRspamdsReply()
    {
        var message = MilterPeers.Message("alice@example.org", "bob@example.com", "Cheap offers", $"Hello,\n\n{MilterPeers.Gtube}\n");
        var (result, _) = await MilterPeers.PassAsync(peer.Milter, "alice@example.org", "bob@example.com", message);
        Assert.True(result.Verdict.Kind == MilterVerdictKind.Reject, $"{result.Verdict} {string.Join("; ", result.Modifications)} {peer.Output}");
        Assert.Equal(5, result.Verdict.Reply!.Code / 100);
        // rspamd answers GTUBE with its own words for the symbol, not the proxy's reject_message.
        Assert.Contains("Gtube pattern", result.Verdict.Reply.Text);
    }

    [Fact]
    public async Task ACleanMessageIsLetThrough()
    {
        var message = MilterPeers.Message("alice@example.org", "bob@example.com", "Lunch on Thursday",
            "Hi Bob,\n\nare we still on for lunch on Thursday at noon? The usual place.\n\nAlice\n");
        var (result, _) = await MilterPeers.PassAsync(peer.Milter, "alice@example.org", "bob@example.com", message);
        Assert.True(result.Verdict.Kind is MilterVerdictKind.Continue or MilterVerdictKind.Accept, $"{result.Verdict} {peer.Output}");
    }

    /// <summary>rspamd with only its proxy worker, in milter mode.</summary>
    public sealed class Peer : IAsyncLifetime
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("postern-rspamd-").FullName;
        private PeerProcess? _rspamd;

        public Milter Milter { get; private set; } = null!;

        public string Output => $"rspamd: {_rspamd?.Output}";

        public async Task InitializeAsync()
        {
            var port = Ports.Free(IPAddress.Loopback);
            Directory.CreateDirectory(Path.Combine(_dir, "db"));
            var config = Path.Combine(_dir, "rspamd.conf");
            // The packaged rules and modules (common.conf), with every worker but the proxy left out,
            // logging to the console, and DNS kept short: the test machine has no Internet.
            File.WriteAllText(config, $$"""
                .include "$CONFDIR/common.conf"
                options {
                    pidfile = "{{_dir}}/rspamd.pid";
                    .include "$CONFDIR/options.inc"
                    dns { timeout = 1s; retransmits = 1; }
                }
                logging {
                    type = "console";
                    level = "notice";
                }
                worker "rspamd_proxy" {
                    bind_socket = "127.0.0.1:{{port}}";
                    milter = yes;
                    timeout = 120s;
                    count = 1;
                    upstream "local" {
                        default = yes;
                        self_scan = yes;
                    }
                }
                """);
            // -i: running as root is allowed for a test; rspamd loads its whole rule set at start: give it a minute.
            _rspamd = await PeerProcess.StartAsync(MilterPeers.Command("/usr/bin/rspamd", "-f", "-i", "-u", "root", "-g", "root", "-c", config,
                    $"--var=DBDIR={_dir}/db", $"--var=RUNDIR={_dir}", $"--var=LOGDIR={_dir}"),
                "rspamd", () => Ports.IsListening(new IPEndPoint(IPAddress.Loopback, port)), $"listen on 127.0.0.1:{port}", timeoutMs: 90_000);
            Milter = MilterPeers.MilterAt("rspamd", $"inet:127.0.0.1:{port}");
        }

        public async Task DisposeAsync()
        {
            if (_rspamd is not null)
            {
                await _rspamd.StopAsync();
            }
            Directory.Delete(_dir, recursive: true);
        }
    }
}
