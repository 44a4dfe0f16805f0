using System.Diagnostics;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>Runs a real peer program (swaks, python3). A missing program fails the test: CI installs them.</summary>
public static class Peers
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string All => Stdout + Stderr;
    }

    public static async Task<Result> RunAsync(string program, IEnumerable<string> args, string? stdin = null, int timeoutMs = 60_000)
    {
        var psi = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new Xunit.Sdk.XunitException($"{program} is not installed ({e.Message}); run .ci/run, which installs the test peers");
        }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (stdin is not null)
            {
                await p.StandardInput.WriteAsync(stdin);
            }
            p.StandardInput.Close();
            using var cts = new CancellationTokenSource(timeoutMs);
            try
            {
                await p.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException($"{program} did not finish in {timeoutMs} ms: {await stdout}{await stderr}");
            }
            return new Result(p.ExitCode, await stdout, await stderr);
        }
    }

    /// <summary>
    /// Stops a peer process started for a test, with every process it forked (PostSRSd forks one per
    /// connection), waits up to 10 s for it, and removes its folder; whatever is already gone is fine.
    /// </summary>
    public static async Task StopAsync(Process? process, string? directory)
    {
        if (process is not null)
        {
            try
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                    using var cts = new CancellationTokenSource(10_000);
                    await process.WaitForExitAsync(cts.Token);
                }
            }
            catch (Exception e) when (e is InvalidOperationException or OperationCanceledException or System.ComponentModel.Win32Exception)
            {
            }
            process.Dispose();
        }
        if (directory is null)
        {
            return;
        }
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
