using System.Diagnostics;
using System.Net;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Filters.Rspamd;

/// <summary>
/// A private rspamd (Debian's package) on a loopback port: the packaged rules of /etc/rspamd with a
/// configuration folder of its own in a temp dir, a normal worker only, no Redis, DNS sent to a
/// loopback port where nothing answers (so it never tries the Internet, and each lookup gives up
/// after 0.2 s), no hyperscan and a short TLD list so it starts in about two seconds. Two settings
/// ids let a test choose the action: <see cref="AddHeaderSettings"/> and <see cref="RewriteSettings"/>.
/// Its milter_headers module adds X-Rspamd-Queue-Id and X-Spamd-Bar, so rspamd's own header changes
/// are there to be seen.
/// </summary>
internal sealed class RspamdPeer : IAsyncDisposable
{
    public const string AddHeaderSettings = "postern-add-header";
    public const string RewriteSettings = "postern-rewrite";

    private readonly string _dir;
    private PeerProcess? _process;

    private RspamdPeer(string dir, int port)
    {
        _dir = dir;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The Rspamd.Url for this instance.</summary>
    public string Url => $"http://127.0.0.1:{Port}";

    /// <summary>What rspamd logged so far (for a failing test's message).</summary>
    public string Output => _process?.Output ?? "";

    public static async Task<RspamdPeer> StartAsync()
    {
        if (!File.Exists("/usr/bin/rspamd"))
        {
            throw new Xunit.Sdk.XunitException("rspamd is not installed (Debian package rspamd); run .ci/run, which installs the test peers");
        }
        var dir = Path.Combine(Path.GetTempPath(), "postern-rspamd-" + Guid.NewGuid().ToString("N"));
        var port = Ports.Free(IPAddress.Loopback);
        var deadDns = Ports.Free(IPAddress.Loopback, System.Net.Sockets.ProtocolType.Udp);
        Directory.CreateDirectory(Path.Combine(dir, "local.d"));
        Directory.CreateDirectory(Path.Combine(dir, "db"));
        Directory.CreateDirectory(Path.Combine(dir, "run"));
        // The packaged configuration (common.conf: modules, metrics, scores, actions) with our own
        // top level: one normal worker, no controller, no proxy, no fuzzy storage, logs on stderr.
        File.WriteAllText(Path.Combine(dir, "rspamd.conf"), $$"""
            .include "$CONFDIR/common.conf"
            options {
                pidfile = "$RUNDIR/rspamd.pid";
                .include "$CONFDIR/options.inc"
                .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"
            }
            logging {
                type = "console";
                level = "warning";
            }
            worker "normal" {
                bind_socket = "127.0.0.1:{{port}}";
                .include "$CONFDIR/worker-normal.inc"
                count = 1;
            }
            """);
        File.WriteAllText(Path.Combine(dir, "local.d", "options.inc"), $$"""
            dns { nameserver = ["127.0.0.1:{{deadDns}}"]; timeout = 0.2s; retransmits = 1; }
            disable_hyperscan = true;
            url_tld = "{{dir}}/tld.dat";
            """);
        // The full public suffix list takes rspamd half a minute to compile without hyperscan.
        File.WriteAllText(Path.Combine(dir, "tld.dat"), "com\norg\nnet\nexample\ntest\n");
        File.WriteAllText(Path.Combine(dir, "local.d", "fuzzy_check.conf"), "enabled = false;\n");
        File.WriteAllText(Path.Combine(dir, "local.d", "milter_headers.conf"), "use = [\"x-rspamd-queue-id\", \"x-spamd-bar\"];\n");
        File.WriteAllText(Path.Combine(dir, "local.d", "settings.conf"), $$"""
            postern_add_header {
              id = "{{AddHeaderSettings}}";
              apply { actions { reject = 1000; "add header" = -100; greylist = null; "rewrite subject" = null; } }
            }
            postern_rewrite {
              id = "{{RewriteSettings}}";
              apply { actions { reject = 1000; "rewrite subject" = -100; "add header" = null; greylist = null; } }
            }
            """);
        var psi = new ProcessStartInfo("/usr/bin/rspamd");
        // -f: stay in the foreground, so stopping the process stops rspamd; -i: the tests run as
        // root, and rspamd refuses to run its workers as root without it.
        foreach (var a in new[] { "-f", "-i", "-c", Path.Combine(dir, "rspamd.conf"),
            "--var", $"LOCAL_CONFDIR={dir}", "--var", $"DBDIR={dir}/db", "--var", $"RUNDIR={dir}/run", "--var", $"LOGDIR={dir}" })
        {
            psi.ArgumentList.Add(a);
        }
        var peer = new RspamdPeer(dir, port);
        peer._process = await PeerProcess.StartAsync(psi, "rspamd", [new IPEndPoint(IPAddress.Loopback, port)]);
        return peer;
    }

    /// <summary>Stops rspamd (and its worker), leaving the folder for <see cref="DisposeAsync"/>.</summary>
    public async Task StopAsync()
    {
        if (_process is not null)
        {
            await _process.StopAsync();
            _process = null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
