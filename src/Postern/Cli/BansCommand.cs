using System.Globalization;
using System.Text.Json;
using Postern.Server.Accounts;

using Postern.Invocation;

namespace Postern.Cli;

/// <summary>
/// `postern bans list|release KEY`: the AUTH brute-force bans in DATA/bans.json, whether or not the
/// server runs (a running server notices a release within a second, by the file's time).
/// </summary>
public static class BansCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        a.Allow("--json");
        var (options, _) = CommandLine.LoadOptions(a, actAsDataOwner: true);
        var bans = new BanList(Path.Combine(options.DataDirectory, "bans.json"), TimeProvider.System);
        switch (a.Positional.ElementAtOrDefault(0) ?? "list")
        {
            case "list":
                var active = bans.ActiveBans();
                if (a.Json)
                {
                    stdout.WriteLine(JsonSerializer.Serialize(active, Json));
                    return ExitCode.Ok;
                }
                if (active.Count == 0)
                {
                    stdout.WriteLine("no bans in force");
                    return ExitCode.Ok;
                }
                stdout.WriteLine($"{"KEY",-40}  {"UNTIL",-20}  {"LEVEL",5}  REASON");
                foreach (var b in active)
                {
                    stdout.WriteLine($"{b.Key,-40}  {b.Until.ToString("u", CultureInfo.InvariantCulture),-20}  {b.Level,5}  {b.Reason}");
                }
                stdout.WriteLine($"{active.Count} ban(s); lift one with: postern bans release KEY");
                return ExitCode.Ok;
            case "release":
                var key = a.Positional.ElementAtOrDefault(1) ?? throw new UsageException("bans release KEY (as `bans list` shows it, e.g. ip:192.0.2.7)");
                if (!key.StartsWith("ip:", StringComparison.Ordinal) && !key.StartsWith("net:", StringComparison.Ordinal) && !key.StartsWith("user:", StringComparison.Ordinal))
                {
                    // A bare address or account name is taken for what it looks like.
                    key = key.Contains('@', StringComparison.Ordinal) ? $"user:{key.ToLowerInvariant()}" : key.Contains('/', StringComparison.Ordinal) ? $"net:{key}" : $"ip:{key}";
                }
                var released = bans.Release(key);
                if (a.Json)
                {
                    stdout.WriteLine(JsonSerializer.Serialize(new { Key = key, Released = released }, Json));
                }
                else if (released)
                {
                    stdout.WriteLine($"released {key}");
                }
                else
                {
                    stderr.WriteLine($"postern: no ban in force on {key}");
                }
                return released ? ExitCode.Ok : ExitCode.Problem;
            default:
                throw new UsageException($"unknown action 'bans {a.Positional[0]}'");
        }
    }
}
