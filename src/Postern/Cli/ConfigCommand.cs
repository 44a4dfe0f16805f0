using System.Text.Json;
using System.Text.Json.Serialization;

namespace Postern.Cli;

/// <summary>`postern config check`: validates, then prints the effective values (exit 2 with the key at fault).</summary>
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
        var json = JsonSerializer.Serialize(options, new JsonSerializerOptions
        {
            WriteIndented = true,
            Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        });
        if (!a.Json)
        {
            stdout.WriteLine($"configuration OK ({file ?? "embedded --dev defaults"}); effective values:");
        }
        stdout.WriteLine(json);
        return ExitCode.Ok;
    }
}
