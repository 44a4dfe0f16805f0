using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;

namespace Postern.IntegrationTests.Sendmail;

/// <summary>What a program run as a local user printed and returned.</summary>
public sealed record UserRun(int ExitCode, string Out, string Err)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Out}\nstderr:\n{Err}";
}

/// <summary>
/// Unprivileged Unix users for the sendmail tests (made with useradd when missing; the tests run as
/// root), and running programs as them through util-linux's setpriv, as cron runs a user's job.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public static class LocalUser
{
    /// <summary>An ordinary user: may send only as itself.</summary>
    public const string Plain = "pmsend";

    /// <summary>A user listed in Sendmail.TrustedUsers: may give any -f.</summary>
    public const string Trusted = "pmtrusted";

    private static readonly Lazy<bool> Made = new(() =>
    {
        foreach (var user in new[] { Plain, Trusted })
        {
            if (Run("id", "-u", user).ExitCode != 0)
            {
                var made = Run("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", user);
                Assert.True(made.ExitCode == 0, $"useradd {user}: {made}");
            }
        }
        return true;
    });

    public static void EnsureUsers() => _ = Made.Value;

    /// <summary>The server options the sendmail tests share: Hostname is a local domain, and each test user's NAME@Hostname reaches an account.</summary>
    public static void Configure(PosternOptions o)
    {
        o.Domains.Add(o.Hostname);
        o.Aliases[$"{Plain}@{o.Hostname}"] = ["alice@example.test"];
        o.Aliases[$"{Trusted}@{o.Hostname}"] = ["bob@example.test"];
        o.Aliases[$"root@{o.Hostname}"] = ["alice@example.test"];
        o.Sendmail.TrustedUsers = [Trusted];
    }

    /// <summary>A configuration file for `postern sendmail` naming the server's data directory (readable by everyone).</summary>
    public static string WriteConfig(TestServer server)
    {
        var file = Path.Combine(Path.GetDirectoryName(server.DataDir)!, $"sendmail-{Path.GetFileName(server.DataDir)}.json");
        var config = new Dictionary<string, object>
        {
            ["Hostname"] = server.Options.Hostname,
            ["DataDirectory"] = server.DataDir,
            ["Domains"] = server.Options.Domains,
            ["Listeners"] = new[] { new Dictionary<string, string> { ["Endpoint"] = "127.0.0.1:0" } },
            ["Tls"] = new Dictionary<string, bool> { ["Generate"] = true },
            ["Sendmail"] = new Dictionary<string, object> { ["TrustedUsers"] = server.Options.Sendmail.TrustedUsers },
        };
        File.WriteAllText(file, JsonSerializer.Serialize(config));
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        return file;
    }

    /// <summary>The `postern` executable as the Debian package's /usr/sbin/sendmail runs it: a script that execs `postern sendmail "$@"`.</summary>
    public static string WriteSendmailWrapper(string folder, string config)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "postern.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing");
        var script = Path.Combine(folder, "sendmail");
        File.WriteAllText(script, $"#!/bin/sh\nexec {DotnetHost()} {dll} sendmail --config {config} \"$@\"\n");
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        return script;
    }

    /// <summary>Runs `postern sendmail ARGS` as <paramref name="user"/>, with <paramref name="stdin"/> as its input.</summary>
    public static Task<UserRun> SendmailAsync(string user, string config, string stdin, params string[] args) =>
        AsUserAsync(user, stdin, [DotnetHost(), Path.Combine(AppContext.BaseDirectory, "postern.dll"), "sendmail", "--config", config, .. args]);

    /// <summary>Runs a program as <paramref name="user"/> (setpriv --reuid --regid --init-groups), environment cleared but for PATH, HOME and <paramref name="env"/>.</summary>
    public static async Task<UserRun> AsUserAsync(string user, string stdin, string[] command, IReadOnlyDictionary<string, string>? env = null)
    {
        EnsureUsers();
        var start = new ProcessStartInfo("setpriv")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = "/",
        };
        foreach (var a in new[] { $"--reuid={user}", $"--regid={user}", "--init-groups", "--" })
        {
            start.ArgumentList.Add(a);
        }
        foreach (var a in command)
        {
            start.ArgumentList.Add(a);
        }
        start.Environment.Clear();
        start.Environment["PATH"] = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
        start.Environment["HOME"] = "/tmp";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            start.Environment[k] = v;
        }
        using var p = Process.Start(start)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        await p.StandardInput.BaseStream.WriteAsync(Encoding.UTF8.GetBytes(stdin));
        p.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p.WaitForExitAsync(timeout.Token);
        return new UserRun(p.ExitCode, await output, await error);
    }

    private static UserRun Run(string program, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            start.ArgumentList.Add(a);
        }
        using var p = Process.Start(start)!;
        var o = p.StandardOutput.ReadToEnd();
        var e = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return new UserRun(p.ExitCode, o, e);
    }

    private static string DotnetHost()
    {
        var fromSdk = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromSdk) && File.Exists(fromSdk))
        {
            return fromSdk;
        }
        var self = Environment.ProcessPath;
        return self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "/usr/bin/dotnet";
    }
}
