namespace Postern.Invocation;

/// <summary>Exit codes of SPEC §1.</summary>
public static class ExitCode
{
    public const int Ok = 0;
    public const int Problem = 1;
    public const int Usage = 2;
}

/// <summary>Arguments after the verb: flags with values, switches, and positional words.</summary>
public sealed class Arguments
{
    private static readonly HashSet<string> Switches = ["--dev", "--json", "--password-stdin", "--force", "--insecure", "--write"];
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _switches = new(StringComparer.Ordinal);

    public List<string> Positional { get; } = [];

    public static Arguments Parse(IEnumerable<string> args)
    {
        var a = new Arguments();
        var list = args.ToList();
        for (var i = 0; i < list.Count; i++)
        {
            var arg = list[i];
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                var eq = arg.IndexOf('=');
                if (eq > 0)
                {
                    a._values[arg[..eq]] = arg[(eq + 1)..];
                }
                else if (Switches.Contains(arg))
                {
                    a._switches.Add(arg);
                }
                else if (i + 1 < list.Count)
                {
                    a._values[arg] = list[++i];
                }
                else
                {
                    throw new UsageException($"{arg} needs a value");
                }
            }
            else
            {
                a.Positional.Add(arg);
            }
        }
        return a;
    }

    public string? Value(string name) => _values.GetValueOrDefault(name);

    /// <summary>The same options without the first positional word (the sub-command's own arguments).</summary>
    public Arguments Shift()
    {
        var a = new Arguments();
        foreach (var (k, v) in _values)
        {
            a._values[k] = v;
        }
        a._switches.UnionWith(_switches);
        a.Positional.AddRange(Positional.Skip(1));
        return a;
    }

    public bool Has(string name) => _switches.Contains(name);

    public bool Dev => Has("--dev");
    public bool Json => Has("--json");
    public string? Config => Value("--config");

    /// <summary>Fails on flags this verb does not know, so a typo is never silently ignored.</summary>
    public void Allow(params string[] names)
    {
        foreach (var k in _values.Keys.Concat(_switches))
        {
            if (!names.Contains(k) && k is not "--config" and not "--dev")
            {
                throw new UsageException($"unknown option {k}");
            }
        }
    }
}

public sealed class UsageException(string message) : Exception(message);
