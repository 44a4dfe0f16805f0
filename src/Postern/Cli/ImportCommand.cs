using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Postern.Protocol.Addresses;
using Postern.Server.Queue;
using Postern.Server.Storage;

using Postern.Invocation;

namespace Postern.Cli;

/// <summary>
/// `postern import aliases FILE [--domain D] [--format aliases|virtual] [--write]`: Postfix's
/// aliases(5) (<c>name: target, target</c>) or virtual(5) (<c>address target, target</c>) made into
/// Postern's <c>Aliases</c> (docs/configuration.md). Prints the JSON object, or with --write merges it
/// into the configuration file (atomically, keeping the other keys; the running server re-reads
/// aliases when the file changes). Each entry that cannot be converted is named with its line.
/// </summary>
public static class ImportCommand
{
    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        a.Allow("--domain", "--format", "--write");
        if (a.Positional.ElementAtOrDefault(0) != "aliases" || a.Positional.Count != 2)
        {
            throw new UsageException("import aliases FILE [--domain D] [--format aliases|virtual] [--write]");
        }
        var path = a.Positional[1];
        var format = a.Value("--format");
        if (format is not (null or "aliases" or "virtual"))
        {
            throw new UsageException("--format is aliases or virtual");
        }
        var (options, configFile) = CommandLine.LoadOptions(a);
        var domains = a.Value("--domain") is { } d
            ? d.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList()
            : options.Domains;
        foreach (var domain in domains)
        {
            if (!AddressParser.IsDomain(domain, true))
            {
                throw new UsageException($"--domain: '{domain}' is not a domain");
            }
        }
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"postern: {path}: {e.Message}");
            return ExitCode.Problem;
        }
        var result = PostfixAliases.Convert(text, format, domains);
        foreach (var (line, problem) in result.Problems)
        {
            stderr.WriteLine($"{path}:{line}: {problem}");
        }
        stderr.WriteLine($"postern: {path}: read as {result.Format}(5): {result.Aliases.Count} alias(es), {result.Problems.Count} entr{(result.Problems.Count == 1 ? "y" : "ies")} not converted");
        if (!a.Has("--write"))
        {
            stdout.WriteLine(JsonSerializer.Serialize(result.Aliases, new JsonSerializerOptions { WriteIndented = true }));
            return result.Problems.Count == 0 ? ExitCode.Ok : ExitCode.Problem;
        }
        if (configFile is null)
        {
            throw new UsageException("--write needs a configuration file (--config FILE), not --dev");
        }
        var added = Merge(configFile, result.Aliases);
        stdout.WriteLine($"{configFile}: {added} alias(es) added or extended; the running server reads them at once");
        return result.Problems.Count == 0 ? ExitCode.Ok : ExitCode.Problem;
    }

    /// <summary>
    /// Adds the aliases to the file's Aliases (an alias already there keeps its targets and gains the
    /// new ones) and writes the file again atomically, with its mode and owner. Comments in the file
    /// are not kept (JSON has none; the loader only tolerates them).
    /// </summary>
    private static int Merge(string configFile, Dictionary<string, List<string>> aliases)
    {
        var original = File.ReadAllText(configFile);
        var root = JsonNode.Parse(original, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) as JsonObject
            ?? throw new UsageException($"{configFile}: not a JSON object");
        var key = root.Select(kv => kv.Key).FirstOrDefault(k => k.Equals("Aliases", StringComparison.OrdinalIgnoreCase)) ?? "Aliases";
        if (root[key] is not JsonObject existing)
        {
            existing = [];
            root[key] = existing;
        }
        var changed = 0;
        foreach (var (address, targets) in aliases)
        {
            var have = existing.Select(kv => kv.Key).FirstOrDefault(k => k.Equals(address, StringComparison.OrdinalIgnoreCase));
            if (have is null)
            {
                existing[address] = new JsonArray([.. targets.Select(t => (JsonNode)JsonValue.Create(t))]);
                changed++;
                continue;
            }
            var list = existing[have] as JsonArray ?? [];
            var known = list.Select(n => n?.GetValue<string>() ?? "").ToHashSet(StringComparer.OrdinalIgnoreCase);
            var more = targets.Where(t => !known.Contains(t)).ToList();
            foreach (var t in more)
            {
                list.Add(JsonValue.Create(t));
            }
            existing[have] = list.DeepClone();
            changed += more.Count > 0 ? 1 : 0;
        }
        var json = root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n";
        var mode = OperatingSystem.IsWindows() ? UnixFileMode.UserRead | UnixFileMode.UserWrite : File.GetUnixFileMode(configFile);
        // The server may read the file through its group (root:postern 0640): the new file gets the
        // old one's owner, group and mode before it replaces it, or nothing is replaced.
        SafeFile.WriteAllBytes(configFile, Encoding.UTF8.GetBytes(json), Durability.Instance, mode, FileStatus.Of(configFile));
        return changed;
    }
}

/// <summary>What <see cref="PostfixAliases.Convert"/> made of a file.</summary>
public sealed record AliasImport(string Format, Dictionary<string, List<string>> Aliases, List<(int Line, string Problem)> Problems);

/// <summary>
/// Reads Postfix's aliases(5) and virtual(5) tables. Both: empty lines and lines whose first
/// non-blank character is # are ignored; a line that starts with white space continues the one
/// before. aliases(5): <c>name: value, value</c>, the name may be quoted; values are local names,
/// addresses, and forms Postern cannot take (<c>|command</c>, <c>/file</c>, <c>:include:</c>).
/// virtual(5): <c>pattern result, result</c> (commas or white space), the pattern an address, a bare
/// name or <c>@domain</c>. A name without a domain gets each domain in turn (the key's domain for
/// its targets).
/// </summary>
public static class PostfixAliases
{
    public static AliasImport Convert(string text, string? format, IReadOnlyList<string> domains)
    {
        var entries = LogicalLines(text);
        format ??= entries.Count(e => KeyOfAliases(e.Text) is not null) * 2 >= entries.Count ? "aliases" : "virtual";
        var aliases = new Dictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
        var problems = new List<(int, string)>();
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (line, entry) in entries)
        {
            string? key;
            string rest;
            if (format == "aliases")
            {
                key = KeyOfAliases(entry);
                if (key is null)
                {
                    problems.Add((line, "not an aliases(5) entry (name: target, ...)"));
                    continue;
                }
                rest = entry[(entry.IndexOf(':', key.StartsWith('"') ? key.Length : 0) + 1)..];
                // "web master": stays quoted (RFC 5321 §4.1.2 Quoted-string) unless it is a plain name.
                var bare = key.Trim('"');
                key = AddressParser.TryParseMailbox($"{bare}@example.com", true, out _) == AddressError.None ? bare : key;
            }
            else
            {
                var split = entry.IndexOfAny([' ', '\t']);
                if (split < 0)
                {
                    problems.Add((line, "not a virtual(5) entry (address target, ...)"));
                    continue;
                }
                key = entry[..split];
                rest = entry[split..];
                if (key.StartsWith('@'))
                {
                    problems.Add((line, $"{key}: a catch-all for a whole domain; Postern has none (list each address, or make them accounts)"));
                    continue;
                }
                if (!key.Contains('@', StringComparison.Ordinal) && key.Contains('.', StringComparison.Ordinal))
                {
                    problems.Add((line, $"{key}: declares a virtual alias domain; add it to Domains instead"));
                    continue;
                }
            }
            var values = SplitValues(rest, format == "virtual");
            var keys = key.Contains('@', StringComparison.Ordinal) ? [key] : domains.Select(d => $"{key}@{d}").ToList();
            foreach (var k in keys)
            {
                if (AddressParser.TryParseMailbox(k, true, out var km) != AddressError.None || km is null)
                {
                    problems.Add((line, $"{k}: not an address"));
                    continue;
                }
                if (!seen.Add(k))
                {
                    problems.Add((line, $"{k}: already defined above; the first is kept (as Postfix does)"));
                    continue;
                }
                var targets = new List<string>();
                foreach (var v in values)
                {
                    var target = v.StartsWith('\\') ? v[1..] : v; // \name: deliver without further aliasing; Postern's aliases expand anyway, to an account
                    if (target.StartsWith('|') || target.StartsWith("\"|", StringComparison.Ordinal))
                    {
                        problems.Add((line, $"{k}: {v}: a command; Postern delivers only to mailboxes and addresses"));
                        continue;
                    }
                    if (target.StartsWith('/') || target.StartsWith("\"/", StringComparison.Ordinal))
                    {
                        problems.Add((line, $"{k}: {v}: a file; Postern delivers only to mailboxes and addresses"));
                        continue;
                    }
                    if (target.StartsWith(":include:", StringComparison.OrdinalIgnoreCase))
                    {
                        problems.Add((line, $"{k}: {v}: an include file; import that file's addresses as the targets instead"));
                        continue;
                    }
                    var address = target.Contains('@', StringComparison.Ordinal) ? target : $"{target}@{km.Domain}";
                    if (AddressParser.TryParseMailbox(address, true, out _) != AddressError.None)
                    {
                        problems.Add((line, $"{k}: {v}: not an address"));
                        continue;
                    }
                    if (!targets.Contains(address, StringComparer.OrdinalIgnoreCase))
                    {
                        targets.Add(address);
                    }
                }
                if (targets.Count > 0)
                {
                    aliases[k] = targets;
                }
                else if (values.Count == 0)
                {
                    problems.Add((line, $"{k}: no target"));
                }
            }
        }
        return new AliasImport(format, aliases, problems);
    }

    /// <summary>Lines joined with their continuations, comments and blank lines left out, each with the number of its first line.</summary>
    private static List<(int Line, string Text)> LogicalLines(string text)
    {
        var result = new List<(int Line, string Text)>();
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var l = lines[i];
            var trimmed = l.Trim();
            if (trimmed.Length == 0 || trimmed.StartsWith('#'))
            {
                continue;
            }
            if ((l[0] == ' ' || l[0] == '\t') && result.Count > 0)
            {
                result[^1] = (result[^1].Line, result[^1].Text + " " + trimmed);
                continue;
            }
            result.Add((i + 1, trimmed));
        }
        return result;
    }

    /// <summary>The name of an aliases(5) entry (quoted names keep their quotes), or null when the line has none.</summary>
    private static string? KeyOfAliases(string entry)
    {
        if (entry.StartsWith('"'))
        {
            var close = entry.IndexOf('"', 1);
            return close > 0 && entry[(close + 1)..].TrimStart().StartsWith(':') ? entry[..(close + 1)] : null;
        }
        var colon = entry.IndexOf(':');
        if (colon <= 0)
        {
            return null;
        }
        var name = entry[..colon].TrimEnd();
        return name.Length == 0 || name.Any(char.IsWhiteSpace) ? null : name;
    }

    /// <summary>Values separated by commas (and, in virtual(5), white space), quotes kept together.</summary>
    private static List<string> SplitValues(string rest, bool spaceSeparates)
    {
        var values = new List<string>();
        var current = new StringBuilder();
        var quoted = false;
        foreach (var c in rest)
        {
            if (c == '"')
            {
                quoted = !quoted;
                current.Append(c);
            }
            else if (!quoted && (c == ',' || (spaceSeparates && char.IsWhiteSpace(c))))
            {
                Flush();
            }
            else
            {
                current.Append(c);
            }
        }
        Flush();
        return values;

        void Flush()
        {
            var v = current.ToString().Trim();
            if (v.Length > 0)
            {
                // "name"@domain keeps its quotes; a wholly quoted value ("|cmd args") loses them.
                values.Add(v.Length > 1 && v[0] == '"' && v[^1] == '"' && !v.Contains('@', StringComparison.Ordinal) ? v[1..^1] : v);
            }
            current.Clear();
        }
    }
}
