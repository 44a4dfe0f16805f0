using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Postern.Cli;

namespace Postern.IntegrationTests.Diag;

/// <summary>
/// Runs `postern diag ...` in process, as the command line does, and reads what it printed: the
/// text, or with --json the report, which must be valid against docs/diag-report.schema.json and
/// whose ok must agree with the exit code.
/// </summary>
internal static class DiagRun
{
    private static readonly Lazy<JsonSchema> Schema = new(() =>
        JsonSchema.FromText(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "diag-report.schema.json"))));

    /// <summary>The plain text (no terminal: no colours, no spinner) and the exit code; <paramref name="stdin"/> is what --password-stdin reads.</summary>
    public static async Task<(int Exit, string Text)> TextWithInputAsync(string stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var exit = await CommandLine.RunAsync(["diag", .. args], stdout, stderr, new StringReader(stdin));
        return (exit, stdout.ToString() + stderr);
    }

    public static Task<(int Exit, string Text)> TextAsync(params string[] args) => TextWithInputAsync("", args);

    /// <summary>The --json report, checked against the schema, and the exit code.</summary>
    public static async Task<(int Exit, JsonObject Report)> JsonWithInputAsync(string stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var exit = await CommandLine.RunAsync(["diag", .. args, "--json"], stdout, stderr, new StringReader(stdin));
        Assert.True(exit is 0 or 1, $"exit {exit}: {stderr}");
        var text = stdout.ToString();
        var node = JsonNode.Parse(text) ?? throw new InvalidOperationException("no JSON");
        var result = Schema.Value.Evaluate(JsonDocument.Parse(text).RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.True(result.IsValid, $"not valid against docs/diag-report.schema.json: {string.Join("; ", (result.Details ?? []).Where(d => d.Errors is { Count: > 0 }).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}")))}\n{text}");
        var report = node.AsObject();
        Assert.Equal(exit == 0, report["ok"]!.GetValue<bool>());
        return (exit, report);
    }

    public static Task<(int Exit, JsonObject Report)> JsonAsync(params string[] args) => JsonWithInputAsync("", args);

    /// <summary>The step with the given id; fails the test, listing the ids there are, when there is none.</summary>
    public static JsonObject Step(JsonObject report, string id) =>
        report["steps"]!.AsArray().Select(s => s!.AsObject()).FirstOrDefault(s => (string?)s["id"] == id)
        ?? throw new Xunit.Sdk.XunitException($"no step {id}; there are: {string.Join(", ", report["steps"]!.AsArray().Select(s => (string?)s!["id"]))}");

    public static string Status(JsonObject step) => (string)step["status"]!;

    public static string? Code(JsonObject step) => (string?)step["code"];
}
