using System.Diagnostics;

namespace Postern.Server.Tests;

/// <summary>contrib/postern.service, which docs/security.md recommends, is a unit systemd accepts without a warning.</summary>
public sealed class SystemdUnitIsValid
{
    [Fact]
    public async Task SystemdAnalyzeVerifyFindsNothing()
    {
        var unit = File.ReadAllText(RepositoryFiles.Under("contrib/postern.service"));
        Assert.Contains("AmbientCapabilities=CAP_NET_BIND_SERVICE", unit);
        Assert.Contains("User=postern", unit);
        Assert.Contains("NoNewPrivileges=yes", unit);
        // verify wants the program to exist: point it at one that does.
        var dir = Directory.CreateTempSubdirectory("postern-unit-");
        var copy = Path.Combine(dir.FullName, "postern.service");
        File.WriteAllText(copy, unit.Replace("/opt/postern/postern", "/bin/true", StringComparison.Ordinal));
        var psi = new ProcessStartInfo("systemd-analyze") { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add("verify");
        psi.ArgumentList.Add(copy);
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new Xunit.Sdk.XunitException($"systemd-analyze is not installed ({e.Message}); ./test.sh installs it (package systemd)");
        }
        using (p)
        {
            var stderr = await p.StandardError.ReadToEndAsync();
            var stdout = await p.StandardOutput.ReadToEndAsync();
            await p.WaitForExitAsync();
            dir.Delete(recursive: true);
            Assert.True(p.ExitCode == 0 && stderr.Trim().Length == 0, $"systemd-analyze verify: exit {p.ExitCode}\n{stdout}{stderr}");
        }
    }
}
