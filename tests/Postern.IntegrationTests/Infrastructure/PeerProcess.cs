using System.Diagnostics;
using System.Net;
using System.Text;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>
/// A daemon a test runs as a peer (HAProxy, PostSRSd): started with its output collected, ready
/// once the kernel shows its sockets listening (not by connecting: a probe would reach what it
/// serves), stopped with every process it forked.
/// </summary>
internal sealed class PeerProcess
{
    private readonly StringBuilder _output = new();
    private readonly Process _process;

    private PeerProcess(ProcessStartInfo psi)
    {
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.UseShellExecute = false;
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>What it wrote on stdout and stderr so far.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>
    /// Starts <paramref name="psi"/> and waits up to 10 s until every endpoint listens; fails the
    /// test when it exits first (with its output, and <paramref name="hint"/>'s words for it).
    /// </summary>
    public static Task<PeerProcess> StartAsync(ProcessStartInfo psi, string name, IReadOnlyList<IPEndPoint> endpoints, Func<string, string>? hint = null) =>
        StartAsync(psi, name, () => endpoints.All(Ports.IsListening), $"listen on {string.Join(" and ", endpoints)}", hint);

    /// <summary>
    /// Starts <paramref name="psi"/> and waits until <paramref name="ready"/> holds (a unix socket
    /// appears, say), up to <paramref name="timeoutMs"/>; fails the test when it exits first.
    /// </summary>
    public static async Task<PeerProcess> StartAsync(ProcessStartInfo psi, string name, Func<bool> ready, string readyMeans, Func<string, string>? hint = null, int timeoutMs = 10_000)
    {
        PeerProcess peer;
        try
        {
            peer = new PeerProcess(psi);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new Xunit.Sdk.XunitException($"{psi.FileName} is not installed ({e.Message}); run .ci/run, which installs the test peers");
        }
        var deadline = Environment.TickCount64 + timeoutMs;
        while (!ready())
        {
            if (peer._process.HasExited)
            {
                await peer._process.WaitForExitAsync();
                var output = peer.Output;
                throw new Xunit.Sdk.XunitException($"{name} {string.Join(' ', psi.ArgumentList)} exited with {peer._process.ExitCode}: {output}{hint?.Invoke(output)}");
            }
            if (Environment.TickCount64 > deadline)
            {
                var output = peer.Output;
                await peer.StopAsync();
                throw new TimeoutException($"{name} does not {readyMeans} within {timeoutMs / 1000} s: {output}");
            }
            await Task.Delay(20);
        }
        return peer;
    }

    /// <summary>Stops it and what it forked (see <see cref="Peers.StopAsync"/>), leaving folders alone.</summary>
    public Task StopAsync() => Peers.StopAsync(_process, null);

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.Append(line).Append('\n');
            }
        }
    }
}
