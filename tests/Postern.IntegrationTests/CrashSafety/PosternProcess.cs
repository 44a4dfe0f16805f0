using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Postern.IntegrationTests.CrashSafety;

/// <summary>
/// The real `postern serve` executable as a child process (`dotnet postern.dll serve --config F`),
/// with one mx listener on a loopback port picked for it. Dispose kills it: no test leaves a
/// server behind.
/// </summary>
internal sealed class PosternProcess : IDisposable
{
    private const int OutputLines = 400;
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly ConcurrentQueue<string> _notable = new();

    private static int _instances;

    private PosternProcess(Process process, string host, int port, string configPath, Dictionary<string, object> settings)
    {
        _process = process;
        Host = host;
        Port = port;
        ConfigPath = configPath;
        Settings = settings;
    }

    /// <summary>The configuration file the server was started with.</summary>
    public string ConfigPath { get; }

    /// <summary>The settings written to <see cref="ConfigPath"/>: change them, then <see cref="WriteConfig"/>.</summary>
    public Dictionary<string, object> Settings { get; }

    /// <summary>Writes <see cref="Settings"/> to <see cref="ConfigPath"/> (for a reload).</summary>
    public void WriteConfig() => File.WriteAllText(ConfigPath, JsonSerializer.Serialize(Settings));

    /// <summary>Sends the server SIGHUP with Debian's kill(1).</summary>
    public void Hangup()
    {
        using var kill = Process.Start("/bin/kill", ["-HUP", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>Waits for a line (among the last ones kept) with every fragment; fails when the server exits first.</summary>
    public async Task<string> WaitForLineAsync(params string[] fragments)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            var line = _output.FirstOrDefault(l => fragments.All(f => l.Contains(f, StringComparison.Ordinal)));
            if (line is not null)
            {
                return line;
            }
            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"no line with {string.Join(" & ", fragments)}{(_process.HasExited ? $" (the server exited with {_process.ExitCode})" : "")}:\n{Output}");
            }
            await Task.Delay(20);
        }
    }

    /// <summary>
    /// The loopback address the server listens on: one of its own (127.0.3.N), so that the port
    /// picked for it cannot be taken meanwhile by a test server on 127.0.0.1, nor a client of
    /// another test reach this server by mistake.
    /// </summary>
    public string Host { get; }

    public int Port { get; }

    /// <summary>Every line the server prints, as it prints it.</summary>
    public event Action<string>? LineReceived;

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>The last lines the server printed (stdout and stderr), for failure messages.</summary>
    public string Output => string.Join("\n", _output);

    /// <summary>Every line that tells of a refusal, a bounce or an error, however long ago (the tail above forgets).</summary>
    public IReadOnlyCollection<string> Notable => _notable;

    /// <summary>
    /// Writes a config for <paramref name="dataDir"/> next to it and starts the server; returns once its port accepts.
    /// <paramref name="extra"/> adds or replaces top-level configuration sections (e.g. "Dns", "Delivery").
    /// <paramref name="runAs"/> runs it as that user (setpriv, with the user's groups), as a system service would.
    /// </summary>
    /// <paramref name="dll"/> is the postern.dll to run (default: the one beside the tests; with <paramref name="runAs"/>, a copy every user can read).
    public static async Task<PosternProcess> StartAsync(string dataDir, TimeSpan timeout, IReadOnlyDictionary<string, object>? extra = null, string? dll = null, string? runAs = null)
    {
        var host = $"127.0.3.{(Interlocked.Increment(ref _instances) % 250) + 1}";
        var port = FreePort(host);
        var config = Path.Combine(Path.GetDirectoryName(dataDir)!, $"postern-{port}.json");
        var settings = new Dictionary<string, object>
        {
            ["Hostname"] = "mx.example.test",
            ["DataDirectory"] = dataDir,
            ["Domains"] = new[] { "example.test" },
            ["Listeners"] = new[] { new { Name = "mx", Endpoint = $"{host}:{port}", Role = "mx" } },
            ["Tls"] = new { Generate = true },
            ["Accounts"] = new { PasswdFile = "passwd" },
            // These clients write without waiting for the greeting's pause: triage is tested elsewhere.
            ["Triage"] = new { Enabled = false },
            ["MailAuth"] = new { Enabled = false },
            // Thousands of connections from 127.0.0.1 in a few seconds: rates are tested elsewhere (RateLimits.cs).
            ["Limits"] = new { MaxConnectionsPerIpPerMinute = 0, MaxMessagesPerHourPerIp = 0, MaxRecipientsPerHourPerIp = 0 },
        };
        if (runAs is null && Environment.UserName == "root" && !OperatingSystem.IsWindows() && Postern.Server.Storage.UnixUser.OwnerOf(dataDir) is null or { IsRoot: true })
        {
            // The tests run as root, mostly with a data directory of root's: say so, or serve refuses to run as root.
            settings["User"] = "root";
        }
        foreach (var (key, value) in extra ?? new Dictionary<string, object>())
        {
            settings[key] = value;
        }
        var json = JsonSerializer.Serialize(settings);
        await File.WriteAllTextAsync(config, json);

        dll ??= runAs is not null && !OperatingSystem.IsWindows() ? Infrastructure.SystemUsers.WorldReadablePosternDll : Path.Combine(AppContext.BaseDirectory, "postern.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing: the test project references src/Postern, whose output must be copied next to the tests");
        var start = new ProcessStartInfo(runAs is null ? DotnetHost() : "setpriv")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dataDir)!,
        };
        if (runAs is not null)
        {
            foreach (var a in new[] { $"--reuid={runAs}", $"--regid={runAs}", "--init-groups", DotnetHost() })
            {
                start.ArgumentList.Add(a);
            }
        }
        start.ArgumentList.Add(dll);
        start.ArgumentList.Add("serve");
        start.ArgumentList.Add("--config");
        start.ArgumentList.Add(config);
        // SPEC §2: POSTERN_* variables override the file; the test's settings must be the ones used.
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("POSTERN_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(key);
        }

        var process = new Process { StartInfo = start };
        var child = new PosternProcess(process, host, port, config, settings);
        process.OutputDataReceived += (_, e) => child.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => child.Keep(e.Data is null ? null : "stderr: " + e.Data);
        process.Start();
        try
        {
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            await child.WaitUntilAcceptingAsync(timeout);
        }
        catch
        {
            child.Dispose();
            throw;
        }
        return child;
    }

    /// <summary>SIGKILL: no drain, no flush, no finally block runs in the server.</summary>
    public void KillHard()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }
    }

    public void Dispose()
    {
        KillHard();
        _process.Dispose();
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }
        _output.Enqueue(line);
        LineReceived?.Invoke(line);
        if (line.Contains("status=bounced", StringComparison.Ordinal) || line.Contains("event=rejected", StringComparison.Ordinal)
            || line.Contains(" error ", StringComparison.Ordinal) || line.StartsWith("stderr:", StringComparison.Ordinal))
        {
            _notable.Enqueue(line);
        }
        while (_output.Count > OutputLines && _output.TryDequeue(out _))
        {
        }
    }

    private async Task WaitUntilAcceptingAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (_process.HasExited)
            {
                _process.WaitForExit();
                throw new InvalidOperationException($"postern exited with {_process.ExitCode} before listening on {Port}:\n{Output}");
            }
            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync(IPAddress.Parse(Host), Port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(25);
            }
            catch (SocketException e)
            {
                throw new TimeoutException($"postern did not listen on {Port} within {timeout}: {e.Message}\n{Output}");
            }
        }
    }

    /// <summary>A port nothing listens on now: bind to port 0, read what the system chose, release it.</summary>
    private static int FreePort(string host)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Parse(host), 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>The dotnet host running these tests (the SDK sets DOTNET_HOST_PATH for its children).</summary>
    internal static string DotnetHost()
    {
        var fromSdk = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromSdk) && File.Exists(fromSdk))
        {
            return fromSdk;
        }
        var self = Environment.ProcessPath;
        return self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
    }
}
