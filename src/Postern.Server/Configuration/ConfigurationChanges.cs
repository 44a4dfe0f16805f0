using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Postern.Server.Configuration;

/// <summary>
/// What a reload changes: the settings that differ between the configuration in force and the one
/// just read, named by their key paths as docs/configuration.md names them (Limits.MaxMessageSize,
/// Domains, Listeners[0].Endpoint), split into those applied at once and those that need a restart.
/// </summary>
/// <param name="Applied">Changed settings that the server applies now.</param>
/// <param name="RestartNeeded">Changed settings that only a restart applies; their running value is kept.</param>
/// <param name="Effective">The new options with the running value of every setting in <paramref name="RestartNeeded"/>: what is in force after the reload.</param>
public sealed record ConfigurationChanges(IReadOnlyList<string> Applied, IReadOnlyList<string> RestartNeeded, PosternOptions Effective)
{
    // The settings a reload applies: everything that needs no new socket, no new file handle held
    // since the start and no re-made delivery machinery. A setting not listed here (including one
    // added later and not yet made reloadable) counts as needing a restart, so a reload never says
    // it applied something it did not. Needing a restart: Hostname (in every Received field, the
    // Maildir file names and the EHLO of connections kept open for reuse), DataDirectory, Listeners
    // (endpoints, roles, names, PROXY protocol: the sockets), Dns (the resolver and its cache are
    // shared by delivery and mail authentication), the delivery worker counts and bind addresses,
    // MailAuth.Srs and MailAuth.ArcSeal (wired into forwarding at start), Accounts.PasswdFile (the
    // file watched), User and Logging.Format.
    private static readonly Regex Reloadable = new(
        """
        ^( Domains | Aliases | Limits\..+ | Relay\.TrustedNetworks | Relay\.Smarthost(\..+)? | Dnsbl\..+ | Triage\..+ | Tls\..+
         | MailAuth\.(Enabled|RejectSpfFail|EnforceDmarc|SkipTrustedNetworks) | Listeners\[\d+\]\.MailAuth(\..+)?
         | Delivery\.(RemotePort|MaxQueueLifetime|DelayWarningAfter|RetryInitialDelay|RetryMaxDelay|Discard)
         | Accounts\.(?!PasswdFile$).+ | Logging\.Level | Sendmail\..+ )$
        """, RegexOptions.IgnorePatternWhitespace | RegexOptions.CultureInvariant);

    // Maps whose keys are data (addresses), not settings: compared whole, keys without case.
    private static readonly HashSet<string> Maps = ["Aliases"];

    /// <summary>True when a reload applies the setting at <paramref name="path"/> (false: it needs a restart).</summary>
    public static bool AppliesOnReload(string path) => Reloadable.IsMatch(path);

    /// <summary>Compares the configuration in force with the one just read (both validated).</summary>
    public static ConfigurationChanges Between(PosternOptions running, PosternOptions loaded)
    {
        var before = JsonSerializer.SerializeToNode(running)!.AsObject();
        var after = JsonSerializer.SerializeToNode(loaded)!.AsObject();
        var applied = new List<string>();
        var restart = new List<string>();
        CompareObject(before, after, "", applied, restart);
        if (restart.Count == 0)
        {
            return new ConfigurationChanges(applied, restart, loaded);
        }
        // `after` now has the running value at every path that needs a restart.
        var effective = after.Deserialize<PosternOptions>()!;
        effective.Aliases = new Dictionary<string, List<string>>(effective.Aliases, StringComparer.OrdinalIgnoreCase);
        return new ConfigurationChanges(applied, restart, effective);
    }

    private static void CompareObject(JsonObject before, JsonObject after, string prefix, List<string> applied, List<string> restart)
    {
        var names = before.Select(p => p.Key).Union(after.Select(p => p.Key)).ToList();
        foreach (var name in names)
        {
            var path = prefix.Length == 0 ? name : $"{prefix}.{name}";
            var b = before[name];
            var a = after[name];
            if (Maps.Contains(path))
            {
                if (Canonical(b) != Canonical(a))
                {
                    Changed(path, after, name, b, applied, restart);
                }
            }
            else if (b is JsonObject bo && a is JsonObject ao)
            {
                CompareObject(bo, ao, path, applied, restart);
            }
            else if (path == "Listeners" && b is JsonArray bl && a is JsonArray al && bl.Count == al.Count)
            {
                // Listener by listener: most of a listener is its socket, its MailAuth policy is not.
                for (var i = 0; i < bl.Count; i++)
                {
                    if (bl[i] is JsonObject bi && al[i] is JsonObject ai)
                    {
                        CompareObject(bi, ai, $"{path}[{i}]", applied, restart);
                    }
                }
            }
            else if (!JsonNode.DeepEquals(b, a))
            {
                // A value, a list (Domains, Relay.TrustedNetworks, Dnsbl.Lists: named whole), or a
                // section set or removed (Relay.Smarthost).
                Changed(path, after, name, b, applied, restart);
            }
        }
    }

    private static void Changed(string path, JsonObject after, string name, JsonNode? before, List<string> applied, List<string> restart)
    {
        if (AppliesOnReload(path))
        {
            applied.Add(path);
            return;
        }
        restart.Add(path);
        after[name] = before?.DeepClone(); // keep the running value
    }

    /// <summary>A map compared whole: keys without case and in order, values as they are.</summary>
    private static string Canonical(JsonNode? map) => map is not JsonObject o
        ? map?.ToJsonString() ?? "null"
        : string.Join("\n", o.Select(p => (Key: p.Key.ToLowerInvariant(), Value: p.Value?.ToJsonString() ?? "null")).OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"));
}
