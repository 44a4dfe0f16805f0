using System.Diagnostics;
using Postern.IntegrationTests.Cli;
using Postern.Server.Storage;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>
/// The `postern` system user (as the Debian package makes it) and a copy of the build that any
/// user may read and run: a process that gives up root still loads assemblies lazily, and a clone
/// may sit where only root can go (/root). Tests that switch users need both; they run as root
/// (CI does) and fail, never skip, when they are not.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
internal static class SystemUsers
{
    private static readonly Lazy<UnixUser> PosternUser = new(() =>
    {
        Assert.True(UnixUser.Current.IsRoot, "these tests run as root (CI does): they check what root leaves behind");
        if (UnixUser.ByName("postern") is null)
        {
            Run("adduser", "--system", "--group", "--no-create-home", "--home", "/var/lib/postern", "postern");
        }
        return UnixUser.ByName("postern") ?? throw new InvalidOperationException("adduser made no postern user");
    });

    private static readonly Lazy<string> Build = new(() =>
    {
        var target = Path.Combine("/tmp", $"postern-build-{Environment.ProcessId}");
        if (Directory.Exists(target))
        {
            Directory.Delete(target, recursive: true);
        }
        foreach (var file in Directory.EnumerateFiles(AppContext.BaseDirectory, "*", SearchOption.AllDirectories))
        {
            var to = Path.Combine(target, Path.GetRelativePath(AppContext.BaseDirectory, file));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(file, to);
        }
        Run("chmod", "-R", "a+rX", target);
        return Path.Combine(target, "postern.dll");
    });

    /// <summary>The `postern` system user, made when missing (adduser --system --group).</summary>
    public static UnixUser Postern => PosternUser.Value;

    /// <summary>postern.dll in a copy of the build that every user can read.</summary>
    public static string WorldReadablePosternDll => Build.Value;

    /// <summary>A folder for a data directory, given to <paramref name="owner"/>, in a parent every user may pass through.</summary>
    public static string DataDirectoryOwnedBy(UnixUser owner)
    {
        var parent = Path.Combine("/tmp", "postern-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(parent);
        File.SetUnixFileMode(parent, (UnixFileMode)0b111_101_101);
        var data = Path.Combine(parent, "data");
        Directory.CreateDirectory(data);
        FileOwner.Chown(data, owner.Uid, owner.Gid);
        return data;
    }

    /// <summary>Runs a `postern` verb as a process of its own (as root, as the tests are), to its end.</summary>
    public static Task<CliResult> RunVerbAsync(string stdin, params string[] args) => RunVerbAsAsync(null, stdin, args);

    /// <summary>Runs a `postern` verb as <paramref name="user"/> (setpriv, with the user's groups), or as root when null.</summary>
    public static async Task<CliResult> RunVerbAsAsync(string? user, string stdin, params string[] args)
    {
        var start = new ProcessStartInfo(user is null ? CrashSafety.PosternProcess.DotnetHost() : "setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (user is not null)
        {
            var who = UnixUser.ByName(user) ?? throw new InvalidOperationException($"no user {user}");
            foreach (var a in new[] { $"--reuid={who.Uid}", $"--regid={who.Gid}", "--init-groups", CrashSafety.PosternProcess.DotnetHost() })
            {
                start.ArgumentList.Add(a);
            }
        }
        start.ArgumentList.Add(WorldReadablePosternDll);
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("POSTERN_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(key);
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(stdin);
        process.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return new CliResult(process.ExitCode, await stdout, await stderr);
    }

    private static void Run(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{program} {string.Join(' ', args)}: exit {p.ExitCode}: {err}");
    }
}
