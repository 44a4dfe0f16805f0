using System.Text;

namespace Postern.MailAuth.PublicSuffix;

/// <summary>Which sections of the Public Suffix List a <see cref="PublicSuffixList"/> holds.</summary>
[Flags]
public enum PublicSuffixSections
{
    /// <summary>Between <c>===BEGIN ICANN DOMAINS===</c> and its END: suffixes run by registries.</summary>
    Icann = 1,
    /// <summary>
    /// Between <c>===BEGIN PRIVATE DOMAINS===</c> and its END: suffixes under which a company hands out
    /// names to unrelated customers (github.io, blogspot.com, …).
    /// </summary>
    Private = 2,
    /// <summary>The whole list, as published. The default, and what DMARC uses here.</summary>
    All = Icann | Private,
}

/// <summary>
/// The Public Suffix List (https://publicsuffix.org/list/): which names are public suffixes, and so
/// which name is the registrable ("organizational") domain of another.
/// </summary>
/// <remarks>
/// <para>The algorithm is the one publicsuffix.org documents: every rule that matches the name counts;
/// an exception rule (<c>!x</c>) prevails over all others and stands for its own name minus its
/// leftmost label; otherwise the matching rule with the most labels prevails; wildcards (<c>*.x</c>)
/// match exactly one label; when nothing matches the implicit rule <c>*</c> makes the top-level label
/// the suffix. The registrable domain is the public suffix plus one label.</para>
/// <para>For DMARC (RFC 7489 §3.2) the whole list is used, PRIVATE section included, as OpenDMARC,
/// Stalwart mail-auth and the big receivers do: <c>alice.github.io</c> and <c>bob.github.io</c> belong
/// to different people, so they must not align in relaxed mode, and a message from
/// <c>alice.github.io</c> must not be judged by a record at <c>_dmarc.github.io</c>. Load with
/// <see cref="PublicSuffixSections.Icann"/> for the ICANN-only reading.</para>
/// <para>Names are compared as lower-case A-labels (IDNA via <see cref="System.Globalization.IdnMapping"/>);
/// rules written in Unicode are converted when the list is loaded. The matcher walks the name's
/// suffixes from the right, one dictionary probe each without allocating, and stops as soon as no
/// rule is that long; an instance is immutable and safe to share between threads.</para>
/// </remarks>
public sealed class PublicSuffixList
{
    /// <summary>The name of the embedded copy of the list (PublicSuffix/public_suffix_list.dat, MPL-2.0).</summary>
    public const string EmbeddedResourceName = "Postern.MailAuth.PublicSuffix.public_suffix_list.dat";

    [Flags]
    private enum Rules : byte
    {
        /// <summary>The name is a rule as written.</summary>
        Plain = 1,
        /// <summary><c>*.name</c> is a rule: every child of the name is a public suffix.</summary>
        WildcardBelow = 2,
        /// <summary><c>!name</c> is a rule: the name is not a public suffix after all.</summary>
        Exception = 4,
        /// <summary>Some longer rule ends with this name: keep walking left.</summary>
        Interior = 8,
    }

    // PublicationOnly: a failure (say, no memory at the first load) is not cached; the next use tries again.
    private static readonly Lazy<PublicSuffixList> EmbeddedList = new(() => LoadEmbedded(PublicSuffixSections.All), LazyThreadSafetyMode.PublicationOnly);

    private readonly Dictionary<string, Rules> _rules;
    private readonly Dictionary<string, Rules>.AlternateLookup<ReadOnlySpan<char>> _lookup;

    private PublicSuffixList(Dictionary<string, Rules> rules, int ruleCount, PublicSuffixSections sections)
    {
        _rules = rules;
        _lookup = rules.GetAlternateLookup<ReadOnlySpan<char>>();
        RuleCount = ruleCount;
        Sections = sections;
    }

    /// <summary>The list shipped in this assembly, both sections, loaded once on first use.</summary>
    public static PublicSuffixList Embedded => EmbeddedList.Value;

    /// <summary>How many rules were loaded.</summary>
    public int RuleCount { get; }

    /// <summary>The sections these rules came from.</summary>
    public PublicSuffixSections Sections { get; }

    /// <summary>Loads the copy of the list embedded in this assembly.</summary>
    public static PublicSuffixList LoadEmbedded(PublicSuffixSections sections = PublicSuffixSections.All)
    {
        using var stream = typeof(PublicSuffixList).Assembly.GetManifestResourceStream(EmbeddedResourceName)
            ?? throw new InvalidOperationException($"the resource {EmbeddedResourceName} is missing from {typeof(PublicSuffixList).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return Parse(reader, sections);
    }

    /// <summary>Loads the list from a file (a newer copy than the embedded one, named in configuration).</summary>
    /// <exception cref="InvalidDataException">The file holds no rules.</exception>
    public static PublicSuffixList Load(string path, PublicSuffixSections sections = PublicSuffixSections.All)
    {
        using var reader = new StreamReader(path, Encoding.UTF8);
        return Parse(reader, sections);
    }

    /// <summary>
    /// Reads the list's format: UTF-8, one rule per line, read up to the first white space; <c>//</c>
    /// starts a comment line; the section markers are comments of their own.
    /// </summary>
    /// <exception cref="InvalidDataException">The text holds no rules (not a Public Suffix List).</exception>
    public static PublicSuffixList Parse(TextReader reader, PublicSuffixSections sections = PublicSuffixSections.All)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var rules = new Dictionary<string, Rules>(StringComparer.Ordinal);
        var count = 0;
        // Rules before any marker (a hand-written list) are taken as ICANN rules.
        var section = PublicSuffixSections.Icann;
        while (reader.ReadLine() is { } line)
        {
            var text = line.AsSpan().Trim();
            if (text.StartsWith("//", StringComparison.Ordinal))
            {
                if (text.Contains("===BEGIN ICANN DOMAINS===", StringComparison.Ordinal))
                {
                    section = PublicSuffixSections.Icann;
                }
                else if (text.Contains("===BEGIN PRIVATE DOMAINS===", StringComparison.Ordinal))
                {
                    section = PublicSuffixSections.Private;
                }
                continue;
            }
            var space = text.IndexOfAny(' ', '\t');
            if (space >= 0)
            {
                text = text[..space];
            }
            if (text.IsEmpty || (sections & section) == 0)
            {
                continue;
            }
            var kind = Rules.Plain;
            if (text[0] == '!')
            {
                kind = Rules.Exception;
                text = text[1..];
            }
            else if (text.StartsWith("*.", StringComparison.Ordinal))
            {
                kind = Rules.WildcardBelow;
                text = text[2..];
            }
            // A rule that is not a valid name (a wildcard other than leftmost, say) can never match; skip it.
            var name = DomainName.ToAscii(text.ToString());
            if (name is null || name.Contains('*', StringComparison.Ordinal))
            {
                continue;
            }
            Add(rules, name, kind);
            count++;
            for (var dot = name.IndexOf('.', StringComparison.Ordinal); dot >= 0; dot = name.IndexOf('.', dot + 1))
            {
                Add(rules, name[(dot + 1)..], Rules.Interior);
            }
        }
        if (count == 0)
        {
            throw new InvalidDataException("no rules: this is not a Public Suffix List");
        }
        return new PublicSuffixList(rules, count, sections);
    }

    /// <summary>
    /// The public suffix of <paramref name="domain"/> (<c>co.uk</c> for <c>www.example.co.uk</c>,
    /// <c>example</c> for the unlisted <c>a.example</c>), in the form given (Unicode in, Unicode out);
    /// null when the name is null, empty, has an empty label or is not a valid IDN.
    /// </summary>
    public string? PublicSuffix(string? domain)
    {
        var ascii = DomainName.ToAscii(domain);
        if (ascii is null)
        {
            return null;
        }
        return InFormOf(domain!, DomainName.LastLabels(ascii, SuffixLabelCount(ascii)));
    }

    /// <summary>
    /// The registrable domain of <paramref name="domain"/>: its public suffix plus one label, which is
    /// RFC 7489 §3.2's Organizational Domain (<c>example.co.uk</c> for <c>www.example.co.uk</c>), in the
    /// form given. Null when the name is itself a public suffix (<c>com</c>, <c>github.io</c>), or null,
    /// empty, with an empty label, or not a valid IDN: the <c>null</c> of the list's tests.txt.
    /// </summary>
    public string? OrganizationalDomain(string? domain)
    {
        var ascii = DomainName.ToAscii(domain);
        if (ascii is null)
        {
            return null;
        }
        var organizational = OrganizationalDomainOfAscii(ascii);
        return organizational is null ? null : InFormOf(domain!, organizational);
    }

    /// <summary>True when <paramref name="domain"/> is itself a public suffix.</summary>
    public bool IsPublicSuffix(string? domain)
    {
        var ascii = DomainName.ToAscii(domain);
        return ascii is not null && SuffixLabelCount(ascii) >= DomainName.LabelCount(ascii);
    }

    /// <summary><see cref="OrganizationalDomain"/> for a name already in lower-case A-label form.</summary>
    internal string? OrganizationalDomainOfAscii(string ascii)
    {
        var suffix = SuffixLabelCount(ascii);
        return DomainName.LabelCount(ascii) > suffix ? DomainName.LastLabels(ascii, suffix + 1) : null;
    }

    /// <summary>How many labels, from the right, of an A-label name make its public suffix.</summary>
    internal int SuffixLabelCount(ReadOnlySpan<char> name)
    {
        // The implicit rule "*": with nothing else matching, the top-level label is the suffix.
        var longest = 1;
        var parent = (Rules)0;
        var labels = 0;
        var start = name.Length;
        while (start > 0)
        {
            var dot = name[..(start - 1)].LastIndexOf('.');
            start = dot + 1;
            labels++;
            if (!_lookup.TryGetValue(name[start..], out var rules))
            {
                rules = 0;
            }
            if ((rules & Rules.Exception) != 0)
            {
                // An exception prevails over every other rule; it stands for its name minus the leftmost label.
                return labels - 1;
            }
            if ((rules & Rules.Plain) != 0 || (parent & Rules.WildcardBelow) != 0)
            {
                longest = labels;
            }
            if (rules == 0 || dot < 0)
            {
                // No rule is longer than this: nothing further left can match.
                break;
            }
            parent = rules;
            start = dot;
        }
        return longest;
    }

    private static void Add(Dictionary<string, Rules> rules, string name, Rules kind)
    {
        rules.TryGetValue(name, out var existing);
        rules[name] = existing | kind;
    }

    /// <summary>The answer in the caller's form: A-labels for an ASCII name, U-labels for a Unicode one.</summary>
    private static string InFormOf(string given, string ascii) =>
        DomainName.IsAscii(given) ? ascii : DomainName.ToUnicode(ascii);
}
