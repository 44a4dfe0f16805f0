using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Postern.Server.Configuration;
using Postern.Server.Queue;

using Postern.Invocation;

namespace Postern.Cli;

/// <summary>
/// `postern reload`: asks the server running on this data directory to read its configuration file
/// again (what SIGHUP does), and prints what changed, what needs a restart, or every error of a
/// refused file. The request goes the way `postern queue` requests go (DATA/queue/control/), so the
/// server's own answer comes back. Exit 0: reloaded; 1: no server runs (or none answered); 2: the
/// file is not valid (the server keeps the configuration in force).
/// </summary>
public static class ReloadCommand
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };
    // A reload reads a file and perhaps a certificate: seconds at most.
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(10);

    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        a.Allow("--json");
        if (a.Positional.Count > 0)
        {
            throw new UsageException($"reload takes no arguments ('{a.Positional[0]}')");
        }
        var file = ConfigurationLoader.FindConfigFile(a.Config);
        if (file is null && !a.Dev)
        {
            throw new ConfigurationException("no configuration file (give --config FILE, create ./postern.json or /etc/postern/postern.json, or use --dev)");
        }
        var configFile = a.Dev && a.Config is null ? null : file;
        var dataDirectory = DataDirectory(configFile, a.Dev);
        // As root, the request and lock files are made as the data directory's owner (who the server runs as).
        Postern.Server.Storage.DataDirectory.ActAsOwner(new PosternOptions { DataDirectory = dataDirectory });
        var control = new QueueControl(Path.Combine(dataDirectory, "queue"));
        using (var turn = control.TakeTurn(ReplyTimeout))
        {
            if (turn is null)
            {
                stderr.WriteLine($"postern: another `postern` command holds {control.CommandLockPath}; try again");
                return ExitCode.Problem;
            }
            if (!turn.ServerRuns)
            {
                return Print(a.Json, stdout, stderr, new ControlReply("not_running", $"no server is running on {dataDirectory} (nothing holds {control.LockPath}); `postern serve` reads the configuration when it starts", Ok: false), "stopped");
            }
        }
        var reply = control.WaitForReply(control.Submit(new ControlRequest { Action = "reload", Requested = DateTimeOffset.UtcNow }), ReplyTimeout)
            ?? new ControlReply("no_answer", $"a server holds {control.LockPath} but did not take the request within {ReplyTimeout.TotalSeconds:0} s (is it stuck?); the request was withdrawn. `kill -HUP` its process reloads too", Ok: false);
        if (reply.Ok && configFile is not null && reply.File is not null && reply.File != configFile)
        {
            stderr.WriteLine($"postern: note: the server reads {reply.File}, not {configFile} (the file it was started with)");
        }
        return Print(a.Json, stdout, stderr, reply, "running");
    }

    private static int Print(bool json, TextWriter stdout, TextWriter stderr, ControlReply reply, string server)
    {
        var code = reply.Ok ? ExitCode.Ok : reply.Result == "invalid" ? ExitCode.Usage : ExitCode.Problem;
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(new
            {
                result = reply.Result,
                server,
                file = reply.File,
                changed = reply.Changed,
                restart_needed = reply.RestartNeeded,
                errors = reply.Errors,
                detail = reply.Detail,
            }, Json));
            return code;
        }
        if (reply.Ok)
        {
            stdout.WriteLine($"reloaded {reply.File ?? "the --dev configuration"}");
            stdout.WriteLine(reply.Changed is { Count: > 0 } changed ? $"changed: {string.Join(", ", changed)}" : "changed: nothing");
            if (reply.RestartNeeded is { Count: > 0 } restart)
            {
                stdout.WriteLine($"needs a restart (the running value is kept until then): {string.Join(", ", restart)}");
            }
            return code;
        }
        if (reply.Result == "invalid")
        {
            stderr.WriteLine($"postern: {reply.File ?? "the configuration"} is not valid; the server keeps the configuration in force:");
            foreach (var e in reply.Errors ?? [])
            {
                stderr.WriteLine($"  {e}");
            }
            return code;
        }
        stderr.WriteLine($"postern: {reply.Detail}");
        return code;
    }

    /// <summary>
    /// The data directory, found as the loader finds it (--dev defaults, the file, POSTERN_
    /// variables) but without validating the rest: a file with an error must still reach the server,
    /// whose refusal names every error (and is logged where the administrator looks).
    /// </summary>
    private static string DataDirectory(string? configFile, bool dev)
    {
        var environment = Environment.GetEnvironmentVariables();
        var builder = new ConfigurationBuilder();
        if (dev)
        {
            builder.AddInMemoryCollection(ConfigurationLoader.DevDefaults(environment));
        }
        if (configFile is not null)
        {
            builder.AddJsonFile(configFile, optional: false, reloadOnChange: false);
        }
        builder.AddInMemoryCollection(ConfigurationLoader.EnvironmentOverrides(environment));
        string? data;
        try
        {
            data = builder.Build()["DataDirectory"];
        }
        catch (Exception e) when (e is FormatException or InvalidDataException or IOException)
        {
            // Not even JSON: the full loader says where, with the file's line and position.
            ConfigurationLoader.Load(configFile, dev);
            throw new ConfigurationException($"{configFile}: {e.Message}");
        }
        if (string.IsNullOrWhiteSpace(data))
        {
            throw new ConfigurationException("DataDirectory: is required (it is how the running server is found)");
        }
        var baseDir = configFile is null ? Directory.GetCurrentDirectory() : Path.GetDirectoryName(configFile)!;
        return Path.GetFullPath(data, baseDir);
    }
}
