using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Postern.Server;
using Postern.Server.Accounts;
using Postern.Server.Configuration;
using Postern.Server.Logging;
using Postern.Server.Listening;
using Postern.Server.Queue;
using Postern.Server.Storage;

using Postern.Invocation;

namespace Postern.Cli;

/// <summary>`postern serve`: runs in the foreground until SIGTERM/SIGINT, then drains; SIGHUP reloads the configuration.</summary>
public static class ServeCommand
{
    public const string DevAccount = "dev@example.test";

    public static async Task<int> RunAsync(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        a.Allow();
        var (options, file) = CommandLine.LoadOptions(a);
        // Sessions block pool threads in fsync(2) and the password hash. Start with enough threads that
        // a burst of them does not wait for the pool's slow thread injection (timers would fire late).
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, 8 * Environment.ProcessorCount), io);
        // Log lines are written in batches: one write(2) per batch, not one per line.
        using var logOutput = ReferenceEquals(stdout, Console.Out)
            ? new StreamWriter(Console.OpenStandardOutput(), new System.Text.UTF8Encoding(false), 64 * 1024) { AutoFlush = false }
            : null;
        // Logging.Level can change while running (logs.MinimumLevel, for a reload); Logging.Format cannot.
        using var logs = new KeyValueLoggerProvider(logOutput ?? stdout, options.Logging.Level, format: options.Logging.Format);
        var logger = logs.CreateLogger("postern");
        // SIGHUP reloads the configuration and never stops the server (its default action would, with
        // exit 129). Registered before the start, so that one arriving meanwhile does not kill it either.
        // One that comes while the server starts (its port may already accept) is applied once it runs.
        PosternServer? running = null;
        var hangupWhileStarting = false;
        var gate = new object();
        using var hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c =>
        {
            c.Cancel = true;
            lock (gate)
            {
                if (running is null)
                {
                    hangupWhileStarting = true;
                    return;
                }
            }
            _ = Task.Run(() => running.Reload("SIGHUP")); // off the signal thread; Reload never throws
        });
        PosternServer server;
        string? devPassword = null;
        IReadOnlyList<Socket>? sockets = null;
        try
        {
            // What `postern config check` checks, for the user the server will run as: all problems at once.
            var runAs = DataDirectory.ServerUser(options);
            var problems = StartupChecks.Run(options, runAs, endpoints: false, file, allowRoot: a.Dev);
            if (problems.Count > 0)
            {
                problems.ForEach(p => stderr.WriteLine($"postern: cannot start: {p}"));
                return ExitCode.Usage;
            }
            // Ports first (as root when started as root: 25, 465, 587), then the data directory's user
            // for everything else, so no file the server makes is root's.
            sockets = ListenerSocket.BindAll(options.Listeners);
            DataDirectory.ActAsOwner(options);
            if (a.Dev)
            {
                devPassword = EnsureDevAccount(options);
            }
            server = new PosternServer(options, logger, configFile: file, dev: a.Dev, boundSockets: sockets) { Applied = o => AppliedOnReload(logs, o) };
            server.Start();
            lock (gate)
            {
                running = server;
                if (hangupWhileStarting)
                {
                    _ = Task.Run(() => server.Reload("SIGHUP"));
                }
            }
        }
        catch (Exception e) when (e is not ConfigurationException)
        {
            // A configuration, permission or resource problem is one line and exit 2, never a stack trace.
            sockets?.ToList().ForEach(s => s.Dispose());
            var why = e switch
            {
                EndpointInUseException or UnauthorizedAccessException or IOException => e.Message,
                SocketException s => $"Listeners: cannot listen: {s.Message}",
                _ => $"{e.GetType().Name}: {e.Message}",
            };
            stderr.WriteLine($"postern: cannot start: {why}");
            return ExitCode.Usage;
        }
        catch
        {
            sockets?.ToList().ForEach(s => s.Dispose());
            throw;
        }
        if (a.Dev)
        {
            PrintDevBanner(stderr, options, devPassword);
        }
        var stop = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult("SIGTERM"); });
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult("SIGINT"); });
        var reason = await stop.Task;
        await server.StopAsync(reason);
        await server.DisposeAsync();
        return ExitCode.Ok;
    }

    /// <summary>
    /// After each reload that was not refused, with the options now in force: what the server itself
    /// cannot apply because it lives here: the level of <paramref name="logs"/> (Logging.Level), from
    /// <paramref name="o"/>; lines already being written keep theirs, the next use the new one.
    /// </summary>
    private static void AppliedOnReload(KeyValueLoggerProvider logs, PosternOptions o) => logs.MinimumLevel = o.Logging.Level;

    /// <summary>SPEC §1: one account whose random password is printed once, at first start.</summary>
    private static string? EnsureDevAccount(PosternOptions options)
    {
        var passwd = options.ResolvePath(options.Accounts.PasswdFile);
        var marker = Path.Combine(options.DataDirectory, ".dev-account-created");
        if (File.Exists(marker) || (File.Exists(passwd) && PasswdFile.Load(passwd).ContainsKey(DevAccount)))
        {
            return null;
        }
        var password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(12)).Replace('+', 'x').Replace('/', 'y');
        PasswdFile.Update(passwd, DevAccount, PasswordHasher.Hash(password), Durability.Instance);
        File.WriteAllText(marker, "the dev account's password was printed at first start; `postern user passwd dev@example.test --dev` sets a new one\n");
        return password;
    }

    private static void PrintDevBanner(TextWriter w, PosternOptions o, string? password)
    {
        w.WriteLine();
        w.WriteLine("Postern is running with its development defaults (--dev).");
        foreach (var l in o.Listeners)
        {
            w.WriteLine($"  {l.Name,-12} {l.Endpoint,-16} role {l.Role.ToString().ToLowerInvariant()}");
        }
        w.WriteLine($"  data         {o.DataDirectory}");
        w.WriteLine($"  domains      {string.Join(", ", o.Domains)}");
        if (password is not null)
        {
            w.WriteLine($"  account      {DevAccount}  password: {password}   (shown once; keep it)");
        }
        else
        {
            w.WriteLine($"  account      {DevAccount}  (password was shown at first start)");
        }
        w.WriteLine();
        w.WriteLine("Send a test message:");
        var mx = o.Listeners.FirstOrDefault(l => l.Role == ListenerRole.Mx)?.Endpoint ?? "127.0.0.1:2525";
        var sub = o.Listeners.FirstOrDefault(l => l.Role == ListenerRole.Submission)?.Endpoint ?? "127.0.0.1:2587";
        w.WriteLine($"  swaks --server {mx.Replace(":", " --port ", StringComparison.Ordinal)} --to {DevAccount}");
        w.WriteLine($"  swaks --server {sub.Replace(":", " --port ", StringComparison.Ordinal)} -tls --auth-user {DevAccount} --auth-password PASSWORD --from {DevAccount} --to {DevAccount}");
        w.WriteLine($"Mail lands in {Path.Combine(o.DataDirectory, "mail", "example.test", "dev", "new")}");
        w.WriteLine();
    }
}
