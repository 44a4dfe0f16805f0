using System.Text.Json;
using System.Text.Json.Nodes;

namespace Postern.Diagnostics;

/// <summary>How a step of a check came out. Only <see cref="Fail"/> makes `postern diag` exit 1.</summary>
public enum DiagStatus
{
    /// <summary>As it should be.</summary>
    Pass,

    /// <summary>Worth knowing, neither good nor bad (what a server announced, which MX was chosen).</summary>
    Info,

    /// <summary>Works, but something should be changed (a certificate that expires soon, a softfail SPF).</summary>
    Warn,

    /// <summary>Broken: mail will not flow, or will be refused or distrusted.</summary>
    Fail,
}

/// <summary>
/// One step of a check (SPEC §8): what was tried, what was seen, and when something is wrong the
/// likely cause and the fix in plain words. <paramref name="Data"/> holds the facts as data for
/// <c>--json</c> (names in snake_case); <paramref name="Id"/> is a stable name for the step
/// (<c>tcp.25</c>, <c>spf.record</c>) that scripts and tests can rely on, and <paramref name="Cause"/>'s
/// identity is <paramref name="Code"/>, a stable word for the diagnosis (<c>port_blocked</c>).
/// </summary>
public sealed record DiagStep(
    string Id,
    string Title,
    DiagStatus Status,
    string Tried,
    string Saw,
    string? Code = null,
    string? Cause = null,
    string? Fix = null,
    JsonObject? Data = null);

/// <summary>Everything one `postern diag` run found, in the order it was found.</summary>
public sealed class DiagReport(string check, string target)
{
    private readonly List<DiagStep> _steps = [];

    /// <summary>The sub-command: port, dns, dnsbl, auth, relay, deliver, self.</summary>
    public string Check { get; } = check;

    /// <summary>What it was run against: a host, a domain, an address, an IP.</summary>
    public string Target { get; } = target;

    public IReadOnlyList<DiagStep> Steps => _steps;

    /// <summary>False when any step failed (the exit code is then 1).</summary>
    public bool Ok => _steps.All(s => s.Status != DiagStatus.Fail);

    public void Add(DiagStep step)
    {
        lock (_steps)
        {
            _steps.Add(step);
        }
    }

    /// <summary>The <c>--json</c> form, as docs/diagnostics.md and docs/diag-report.schema.json describe it.</summary>
    public JsonObject ToJson()
    {
        var steps = new JsonArray();
        foreach (var s in _steps)
        {
            var o = new JsonObject
            {
                ["id"] = s.Id,
                ["title"] = s.Title,
                ["status"] = Word(s.Status),
                ["tried"] = s.Tried,
                ["saw"] = s.Saw,
            };
            if (s.Code is not null)
            {
                o["code"] = s.Code;
            }
            if (s.Cause is not null)
            {
                o["cause"] = s.Cause;
            }
            if (s.Fix is not null)
            {
                o["fix"] = s.Fix;
            }
            if (s.Data is not null)
            {
                o["data"] = s.Data.DeepClone();
            }
            steps.Add(o);
        }
        return new JsonObject
        {
            ["check"] = Check,
            ["target"] = Target,
            ["ok"] = Ok,
            ["summary"] = new JsonObject
            {
                ["pass"] = Count(DiagStatus.Pass),
                ["info"] = Count(DiagStatus.Info),
                ["warn"] = Count(DiagStatus.Warn),
                ["fail"] = Count(DiagStatus.Fail),
            },
            ["steps"] = steps,
        };
    }

    public string ToJsonText() => ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    private int Count(DiagStatus status) => _steps.Count(s => s.Status == status);

    public static string Word(DiagStatus status) => status switch
    {
        DiagStatus.Pass => "pass",
        DiagStatus.Info => "info",
        DiagStatus.Warn => "warn",
        _ => "fail",
    };
}
