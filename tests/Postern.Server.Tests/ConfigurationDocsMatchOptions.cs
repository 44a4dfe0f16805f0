using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;
using Postern.Server.Configuration;

namespace Postern.Server.Tests;

/// <summary>
/// STYLE principle 9: options document themselves, and docs/configuration.md stays in step with the
/// options classes. Keys are dotted paths from <see cref="PosternOptions"/>; keys inside elements of a
/// list of option classes are written <c>Listeners[].Endpoint</c>, in the code walk and in the doc.
/// </summary>
public sealed partial class ConfigurationDocsMatchOptions
{
    private const string DocPath = "docs/configuration.md";

    /// <summary>One configuration key found by walking the options classes.</summary>
    public sealed record OptionKey(string Key, Type Type, object? Default);

    /// <summary>One row of a key table in the doc: | `Key` | type | default | environment | meaning |.</summary>
    public sealed record DocRow(string Key, string Type, string Default, string Environment, string Meaning, int Line);

    /// <summary>Every settable leaf of the options, recursively, with the default a fresh instance has.</summary>
    public static List<OptionKey> CodeKeys()
    {
        var keys = new List<OptionKey>();
        Walk(typeof(PosternOptions), "", keys);
        return keys;
    }

    private static void Walk(Type type, string prefix, List<OptionKey> keys)
    {
        var instance = Activator.CreateInstance(type);
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.SetMethod is not { IsPublic: true } || p.GetIndexParameters().Length > 0)
            {
                continue;
            }
            var t = p.PropertyType;
            if (IsOptionsClass(t))
            {
                Walk(t, $"{prefix}{p.Name}.", keys);
            }
            else if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(List<>) && IsOptionsClass(t.GetGenericArguments()[0]))
            {
                Walk(t.GetGenericArguments()[0], $"{prefix}{p.Name}[].", keys);
            }
            else
            {
                keys.Add(new OptionKey(prefix + p.Name, t, p.GetValue(instance)));
            }
        }
    }

    private static bool IsOptionsClass(Type t) =>
        t.IsClass && t != typeof(string) && t.Namespace == typeof(PosternOptions).Namespace;

    /// <summary>The rows of every key table in the doc (first cell a key in backticks).</summary>
    public static List<DocRow> DocRows()
    {
        var rows = new List<DocRow>();
        var lines = File.ReadAllLines(RepositoryFiles.Under(DocPath));
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (!line.StartsWith("| `", StringComparison.Ordinal))
            {
                continue;
            }
            var cells = line.Split('|')[1..^1].Select(c => c.Trim()).ToArray();
            Assert.True(cells.Length == 5, $"{DocPath}:{i + 1}: a key row needs 5 cells (key, type, default, environment, meaning), has {cells.Length}: {line}");
            rows.Add(new DocRow(cells[0].Trim('`'), cells[1], cells[2], cells[3], cells[4], i + 1));
        }
        return rows;
    }

    [Fact]
    public void TheWalkFindsNestedAndListKeys()
    {
        // Guards the walk itself: if it stopped recursing, the two checks below would pass vacuously.
        var keys = CodeKeys().Select(k => k.Key).ToList();
        Assert.Contains("Hostname", keys);
        Assert.Contains("Limits.MaxMessageSize", keys);
        Assert.Contains("Listeners[].Endpoint", keys);
        Assert.Contains("Relay.Smarthost.Host", keys);
        Assert.Contains("Aliases", keys);
        Assert.DoesNotContain("Limits", keys);
        Assert.DoesNotContain("Listeners", keys);
        Assert.True(keys.Count >= 35, $"only {keys.Count} keys found");
    }

    [Fact]
    public void EveryOptionIsDocumented()
    {
        var documented = DocRows().Select(r => r.Key).ToHashSet(StringComparer.Ordinal);
        var missing = CodeKeys().Select(k => k.Key).Where(k => !documented.Contains(k)).ToList();
        Assert.True(missing.Count == 0, $"{DocPath} has no table row for: {string.Join(", ", missing)}");
    }

    [Fact]
    public void EveryDocumentedKeyExists()
    {
        var code = CodeKeys().Select(k => k.Key).ToHashSet(StringComparer.Ordinal);
        var rows = DocRows();
        var unknown = rows.Where(r => !code.Contains(r.Key)).Select(r => $"{r.Key} (line {r.Line})").ToList();
        Assert.True(unknown.Count == 0, $"{DocPath} documents keys the options classes do not have: {string.Join(", ", unknown)}");
        var twice = rows.GroupBy(r => r.Key).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(twice.Count == 0, $"{DocPath} documents these keys more than once: {string.Join(", ", twice)}");
    }

    [Fact]
    public void DocumentedDefaultsMatchTheCode()
    {
        var rows = DocRows().ToDictionary(r => r.Key);
        var wrong = new List<string>();
        foreach (var k in CodeKeys().Where(k => rows.ContainsKey(k.Key)))
        {
            var row = rows[k.Key];
            var canonical = Canonical(k.Default);
            if (string.IsNullOrWhiteSpace(row.Default))
            {
                wrong.Add($"{k.Key}: the default cell is empty");
            }
            else if (canonical is not null && !row.Default.Contains($"`{canonical}`", StringComparison.Ordinal))
            {
                wrong.Add($"{k.Key}: the code's default is `{canonical}`, the doc says \"{row.Default}\"");
            }
            else if (canonical is null && row.Default.StartsWith('`'))
            {
                wrong.Add($"{k.Key}: the code has no default value (empty), the doc says \"{row.Default}\"");
            }
        }
        Assert.True(wrong.Count == 0, string.Join(Environment.NewLine, wrong));
    }

    [Fact]
    public void DocumentedTypesMatchTheCode()
    {
        var rows = DocRows().ToDictionary(r => r.Key);
        var wrong = CodeKeys()
            .Where(k => rows.ContainsKey(k.Key) && !rows[k.Key].Type.StartsWith(TypeWord(k.Type), StringComparison.Ordinal))
            .Select(k => $"{k.Key}: the code's type reads \"{TypeWord(k.Type)}\", the doc says \"{rows[k.Key].Type}\"")
            .ToList();
        Assert.True(wrong.Count == 0, string.Join(Environment.NewLine, wrong));
    }

    [Fact]
    public void EachKeyShowsItsEnvironmentVariable()
    {
        // SPEC §2: POSTERN_ + the key path joined with __, list elements by index.
        var wrong = DocRows()
            .Select(r => (r, expected: "`POSTERN_" + r.Key.Replace("[].", "__0__", StringComparison.Ordinal).Replace(".", "__", StringComparison.Ordinal)))
            .Where(x => !x.r.Environment.StartsWith(x.expected, StringComparison.Ordinal))
            .Select(x => $"{x.r.Key}: expected the environment cell to start with {x.expected}`, it is \"{x.r.Environment}\"")
            .ToList();
        Assert.True(wrong.Count == 0, string.Join(Environment.NewLine, wrong));
    }

    [Fact]
    public void TheExampleFilesInTheDocLoad()
    {
        var blocks = CodeBlocks("json");
        Assert.True(blocks.Count >= 2, $"{DocPath} should have a full and a minimal example, found {blocks.Count} json blocks");
        foreach (var (json, i) in blocks.Select((b, i) => (b, i)))
        {
            var file = RepositoryFiles.WriteConfig(json);
            PosternOptions options;
            try
            {
                var environment = WithCertificateFiles(file);
                if (json.Contains("\"PasswordFile\"", StringComparison.Ordinal))
                {
                    // Likewise the smarthost password file.
                    File.WriteAllText(Path.Combine(Path.GetDirectoryName(file)!, "smarthost.pw"), "secret\n");
                    environment["POSTERN_Relay__Smarthost__PasswordFile"] = Path.Combine(Path.GetDirectoryName(file)!, "smarthost.pw");
                }
                options = ConfigurationLoader.Load(file, dev: false, environment);
            }
            catch (ConfigurationException e)
            {
                throw new Xunit.Sdk.XunitException($"json example {i + 1} in {DocPath} does not load: {e.Message}");
            }
            Assert.Equal("mail.example.com", options.Hostname);
        }
    }

    [Fact]
    public void TheEnvironmentExamplesInTheDocApply()
    {
        var assignments = CodeBlocks("sh")
            .SelectMany(b => b.Split('\n'))
            .Select(l => l.Trim())
            .Where(l => l.StartsWith("POSTERN_", StringComparison.Ordinal))
            .Select(l => (Name: l[..l.IndexOf('=')], Value: l[(l.IndexOf('=') + 1)..]))
            .ToList();
        Assert.True(assignments.Count >= 3, $"{DocPath} should show a few POSTERN_ variables, found {assignments.Count}");
        var file = RepositoryFiles.WriteConfig(RepositoryFiles.ValidConfig);
        var environment = WithCertificateFiles(file);
        foreach (var (name, value) in assignments)
        {
            environment[name] = value;
        }
        var effective = JsonSerializer.Serialize(ConfigurationLoader.Load(file, dev: false, environment));
        foreach (var (name, value) in assignments)
        {
            Assert.True(effective.Contains(value, StringComparison.Ordinal), $"{name}={value} did not show in the effective configuration: {effective}");
        }
    }

    /// <summary>Certificate files that exist, through the environment, so an example's paths need not exist on this machine.</summary>
    private static Hashtable WithCertificateFiles(string configFile)
    {
        var dir = Path.GetDirectoryName(configFile)!;
        File.WriteAllText(Path.Combine(dir, "cert.pem"), "only its existence is checked at load");
        File.WriteAllText(Path.Combine(dir, "key.pem"), "only its existence is checked at load");
        return new Hashtable
        {
            ["POSTERN_Tls__CertificatePath"] = Path.Combine(dir, "cert.pem"),
            ["POSTERN_Tls__KeyPath"] = Path.Combine(dir, "key.pem"),
        };
    }

    private static List<string> CodeBlocks(string language)
    {
        var text = File.ReadAllText(RepositoryFiles.Under(DocPath)).Replace("\r\n", "\n", StringComparison.Ordinal);
        return FencedBlock().Matches(text).Where(m => m.Groups["lang"].Value == language).Select(m => m.Groups["body"].Value).ToList();
    }

    [GeneratedRegex(@"^```(?<lang>\w*)\n(?<body>.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline)]
    private static partial Regex FencedBlock();

    /// <summary>A default as the doc writes it in backticks; null when there is none to show (empty or a collection).</summary>
    private static string? Canonical(object? value) => value switch
    {
        null => null,
        string s => s.Length == 0 ? null : s,
        bool b => b ? "true" : "false",
        TimeSpan t => t.ToString("c", CultureInfo.InvariantCulture),
        Enum e => e.ToString().ToLowerInvariant(),
        int or long => Convert.ToString(value, CultureInfo.InvariantCulture),
        ICollection c when c.Count == 0 => null,
        _ => throw new InvalidOperationException($"no doc form for a default of type {value.GetType()}"),
    };

    /// <summary>How the doc's type column names a CLR type.</summary>
    private static string TypeWord(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        if (t == typeof(string))
        {
            return "string";
        }
        if (t == typeof(int) || t == typeof(long))
        {
            return "integer";
        }
        if (t == typeof(bool))
        {
            return "boolean";
        }
        if (t == typeof(TimeSpan))
        {
            return "duration";
        }
        if (t.IsEnum)
        {
            return "one of " + string.Join(", ", Enum.GetNames(t).Select(n => n.ToLowerInvariant()));
        }
        if (t == typeof(List<string>))
        {
            return "list of strings";
        }
        if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(Dictionary<,>))
        {
            return "map";
        }
        throw new InvalidOperationException($"no doc word for the type {t}");
    }
}
