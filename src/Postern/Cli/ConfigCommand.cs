using System.Text.Json;
using System.Text.Json.Serialization;
using Postern.Server.Configuration;
using Postern.Server.Listening;
using Postern.Server.Queue;
using Postern.Server.Storage;

using Postern.Invocation;

namespace Postern.Cli;

/// <summary>
/// `postern config check`: the values (every unknown key and bad value at once), then what `serve`
/// would meet at start for the user it runs as (files it must read, the data directory it must
/// write, the key against the certificate, each endpoint free); then the effective values. Exit 2 with
/// one line per problem, each naming its key.
/// </summary>
public static class ConfigCommand
{
    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        a.Allow("--json");
        if (a.Positional.ElementAtOrDefault(0) != "check")
        {
            throw new UsageException("config check [--config FILE] [--dev]");
        }
        var (options, file) = CommandLine.LoadOptions(a);
        var runAs = DataDirectory.ServerUser(options);
        // The running server of this data directory holds its own endpoints: that is no problem. When
        // the lock cannot be looked at (another user's queue), nobody can say whose they are: not tried.
        var running = ServerRunning(options);
        var problems = StartupChecks.Run(options, runAs, endpoints: running == false, file, allowRoot: a.Dev);
        if (problems.Count > 0)
        {
            problems.ForEach(p => stderr.WriteLine($"postern: configuration error: {p}"));
            return ExitCode.Usage;
        }
        var json = JsonSerializer.Serialize(options, new JsonSerializerOptions
        {
            WriteIndented = true,
            Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        });
        if (!a.Json)
        {
            stdout.WriteLine($"configuration OK ({file ?? "embedded --dev defaults"}); the server runs as {runAs.Name}{running switch { true => "; a server is running on this data directory (its endpoints were not tried)", null => "; the endpoints were not tried (this user cannot see whether a server runs: run it as root or as the server's user)", _ => "" }}; effective values:");
        }
        stdout.WriteLine(json);
        return ExitCode.Ok;
    }

    /// <summary>Whether a server holds the data directory's lock (opened only if it exists: the check makes nothing).</summary>
    private static bool? ServerRunning(PosternOptions options)
    {
        var lockPath = Path.Combine(options.DataDirectory, "queue", QueueControl.LockFileName);
        try
        {
            // FileShare.None is an exclusive flock(2), as the server's own (QueueControl.TryLock).
            using var probe = new FileStream(lockPath, FileMode.Open, FileAccess.Read, FileShare.None);
            return false;
        }
        catch (FileNotFoundException)
        {
            return false;
        }
        catch (DirectoryNotFoundException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return null; // not ours to look at
        }
        catch (IOException)
        {
            return true; // EWOULDBLOCK: a server holds it
        }
    }
}
