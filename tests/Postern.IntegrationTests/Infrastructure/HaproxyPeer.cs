using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>
/// A private HAProxy (Debian's) in front of a Postern listener, as an admin would run it: TCP mode,
/// listening on <see cref="EndPoint"/> (a loopback address and a free port), forwarding each
/// connection to the backend with a PROXY header (<c>send-proxy</c> for v1, <c>send-proxy-v2</c>
/// for v2, with whatever server options the test adds). It connects to the backend from
/// <see cref="SourceAddress"/>, so a test can tell the proxy from its clients by address. Its
/// configuration lives in a temp folder and the process runs in the foreground (-db) as a child of
/// the test, which kills it at the end: nothing is shared with a system-wide HAProxy. A missing
/// haproxy fails the test: CI installs it.
/// </summary>
public sealed class HaproxyPeer : IAsyncDisposable
{
    private const string HaproxyCommand = "/usr/sbin/haproxy";

    private readonly string _dir;
    private PeerProcess? _process;

    private HaproxyPeer(string dir, IPEndPoint endpoint, string sourceAddress)
    {
        _dir = dir;
        EndPoint = endpoint;
        SourceAddress = sourceAddress;
    }

    /// <summary>Where clients connect.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>The address HAProxy connects to the backend from: the one to trust as a proxy.</summary>
    public string SourceAddress { get; }

    /// <summary>What HAProxy printed (its warnings and errors; -db keeps it in the foreground).</summary>
    public string Output => _process?.Output ?? "";

    /// <summary>
    /// Starts HAProxy on <paramref name="listenAddress"/> and a free port, forwarding to
    /// <paramref name="backend"/> from <paramref name="sourceAddress"/> with the given server-line
    /// options (e.g. "send-proxy", "send-proxy-v2 proxy-v2-options crc32c").
    /// </summary>
    public static async Task<HaproxyPeer> StartAsync(IPEndPoint backend, string serverOptions, string listenAddress = "127.0.0.9", string sourceAddress = "127.0.0.10")
    {
        if (!File.Exists(HaproxyCommand))
        {
            throw new Xunit.Sdk.XunitException($"HAProxy is not installed ({HaproxyCommand} missing); run ./test.sh, which installs it");
        }
        var ip = IPAddress.Parse(listenAddress);
        Assert.True(IPAddress.IsLoopback(ip) && IPAddress.IsLoopback(IPAddress.Parse(sourceAddress)), "HAProxy runs on loopback addresses only");
        var dir = Path.Combine(Path.GetTempPath(), "postern-haproxy", Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dir);
        var peer = new HaproxyPeer(dir, new IPEndPoint(ip, Ports.Free(ip)), sourceAddress);
        try
        {
            await peer.StartAsync(backend, serverOptions);
        }
        catch
        {
            await peer.DisposeAsync();
            throw;
        }
        return peer;
    }

    private async Task StartAsync(IPEndPoint backend, string serverOptions)
    {
        var config = Path.Combine(_dir, "haproxy.cfg");
        File.WriteAllText(config, $"""
            # Private HAProxy for one Postern integration test.
            global
                maxconn 200
                log stderr format short local0 notice

            defaults
                mode tcp
                log global
                timeout connect 5s
                timeout client 60s
                timeout server 60s

            frontend smtp
                bind {EndPoint.Address}:{EndPoint.Port}
                unique-id-format %ci:%cp_%fi:%fp_%Ts_%rt
                default_backend postern

            backend postern
                server postern {backend.Address}:{backend.Port} {serverOptions} source {SourceAddress}

            """);
        // A bad configuration says why here, rather than as a process that exits at once.
        var check = await Peers.RunAsync(HaproxyCommand, ["-c", "-f", config], timeoutMs: 20_000);
        Assert.True(check.ExitCode == 0, $"haproxy -c -f {config} refused the configuration: {check.All}");

        var psi = new ProcessStartInfo(HaproxyCommand) { WorkingDirectory = _dir };
        foreach (var a in new[] { "-db", "-f", config })
        {
            psi.ArgumentList.Add(a);
        }
        _process = await PeerProcess.StartAsync(psi, "haproxy", [EndPoint]);
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
        {
            await _process.StopAsync();
        }
        await Peers.StopAsync(null, _dir);
    }
}
