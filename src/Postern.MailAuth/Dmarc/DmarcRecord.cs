using System.Globalization;

namespace Postern.MailAuth.Dmarc;

/// <summary>What a Domain Owner asks receivers to do with mail that fails DMARC (RFC 7489 §6.3, p=).</summary>
public enum DmarcPolicy
{
    None,
    Quarantine,
    Reject,
}

/// <summary>Identifier alignment mode (RFC 7489 §3.1, adkim= and aspf=).</summary>
public enum AlignmentMode
{
    /// <summary>The same Organizational Domain is enough (the default).</summary>
    Relaxed,
    /// <summary>The names must be identical.</summary>
    Strict,
}

/// <summary>A reporting address from rua= or ruf= (RFC 7489 §6.4 dmarc-uri), with its optional size limit in bytes.</summary>
public sealed record DmarcReportUri(Uri Uri, ulong? MaxSize);

/// <summary>
/// One DMARC policy record (RFC 7489 §6.3), parsed tolerantly: unknown tags are ignored, and a bad
/// value in an optional tag falls back to the tag's default — "syntax errors in the remainder of the
/// record SHOULD be discarded in favor of default values" — and is listed in <see cref="Problems"/>.
/// Only a missing or bad p= (or a bad sp=) makes the record unusable, which RFC 7489 §6.6.3 step 6
/// deals with: see <see cref="HasValidPolicy"/>.
/// </summary>
public sealed class DmarcRecord
{
    private static readonly IReadOnlyList<string> DefaultFailureOptions = ["0"];
    private static readonly IReadOnlyList<string> DefaultReportFormats = ["afrf"];

    private DmarcRecord(string text) => Text = text;

    /// <summary>The record as published.</summary>
    public string Text { get; }

    /// <summary>p=: null when the tag is missing or its value is not a policy.</summary>
    public DmarcPolicy? Policy { get; private set; }

    /// <summary>sp=: the policy for subdomains; null when absent or invalid (see <see cref="SubdomainPolicyInvalid"/>).</summary>
    public DmarcPolicy? SubdomainPolicy { get; private set; }

    /// <summary>True when sp= is present with a value that is not a policy (RFC 7489 §6.6.3 step 6 then applies).</summary>
    public bool SubdomainPolicyInvalid { get; private set; }

    /// <summary>
    /// np= (RFC 9091 §4.1): the policy for subdomains that do not exist. Null when absent or invalid;
    /// an invalid np= is ignored (sp= or p= then applies), as RFC 9091 adds it as an optional tag.
    /// </summary>
    public DmarcPolicy? NonExistentSubdomainPolicy { get; private set; }

    /// <summary>pct=: the percentage of failing mail the policy applies to, 0 to 100 (default 100).</summary>
    public int Percent { get; private set; } = 100;

    /// <summary>adkim= (default relaxed).</summary>
    public AlignmentMode DkimAlignment { get; private set; }

    /// <summary>aspf= (default relaxed).</summary>
    public AlignmentMode SpfAlignment { get; private set; }

    /// <summary>rua=: the syntactically valid aggregate-report addresses, in order.</summary>
    public IReadOnlyList<DmarcReportUri> AggregateReportUris { get; private set; } = [];

    /// <summary>ruf=: the syntactically valid failure-report addresses, in order.</summary>
    public IReadOnlyList<DmarcReportUri> FailureReportUris { get; private set; } = [];

    /// <summary>fo=: failure reporting options, each of 0, 1, d, s (default 0).</summary>
    public IReadOnlyList<string> FailureReportingOptions { get; private set; } = DefaultFailureOptions;

    /// <summary>rf=: failure report formats (default afrf, the only one registered).</summary>
    public IReadOnlyList<string> ReportFormats { get; private set; } = DefaultReportFormats;

    /// <summary>ri=: the aggregate report interval in seconds (default 86400).</summary>
    public uint ReportInterval { get; private set; } = 86400;

    /// <summary>What was wrong with the record, in words; empty for a clean record.</summary>
    public IReadOnlyList<string> Problems { get; private set; } = [];

    /// <summary>
    /// True when p= is valid and sp=, if present, is valid too. RFC 7489 §6.6.3 step 6: otherwise the
    /// record is used as p=none when rua= has a valid address, and not at all when it has none.
    /// </summary>
    public bool HasValidPolicy => Policy is not null && !SubdomainPolicyInvalid;

    /// <summary>
    /// True when <paramref name="text"/> starts with the version tag <c>v=DMARC1</c>. RFC 7489 §6.6.3
    /// steps 2 and 4: other TXT records at _dmarc names are discarded. RFC 7489 §6.4 writes the value
    /// with %x (case-sensitive) and the tag name as a quoted (case-insensitive) string; space is allowed
    /// around "=" and before the ";".
    /// </summary>
    public static bool IsDmarcRecord(string? text)
    {
        if (text is null)
        {
            return false;
        }
        var rest = text.AsSpan().TrimStart(" \t");
        if (rest.IsEmpty || (rest[0] | 0x20) != 'v')
        {
            return false;
        }
        rest = rest[1..].TrimStart(" \t");
        if (rest.IsEmpty || rest[0] != '=')
        {
            return false;
        }
        rest = rest[1..].TrimStart(" \t");
        if (!rest.StartsWith("DMARC1", StringComparison.Ordinal))
        {
            return false;
        }
        rest = rest[6..].TrimStart(" \t");
        return rest.IsEmpty || rest[0] == ';';
    }

    /// <summary>
    /// Parses a TXT record found at a _dmarc name; null when it is not a DMARC record at all
    /// (<see cref="IsDmarcRecord"/>). A record that is one always parses, with its faults in
    /// <see cref="Problems"/>.
    /// </summary>
    public static DmarcRecord? Parse(string? text)
    {
        if (!IsDmarcRecord(text))
        {
            return null;
        }
        var record = new DmarcRecord(text!);
        var problems = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var first = true;
        foreach (var part in text!.Split(';'))
        {
            var tag = part.Trim(' ', '\t');
            if (first)
            {
                // The version tag, already checked.
                first = false;
                continue;
            }
            if (tag.Length == 0)
            {
                continue;
            }
            var equals = tag.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                problems.Add($"'{tag}' is not a tag=value pair");
                continue;
            }
            var name = tag[..equals].TrimEnd(' ', '\t').ToLowerInvariant();
            var value = tag[(equals + 1)..].Trim(' ', '\t');
            if (!seen.Add(name))
            {
                problems.Add($"{name}= appears more than once; the first is used");
                continue;
            }
            record.Apply(name, value, problems);
        }
        if (!seen.Contains("p"))
        {
            problems.Add("p= is missing");
        }
        record.Problems = problems;
        return record;
    }

    private void Apply(string name, string value, List<string> problems)
    {
        switch (name)
        {
            case "v":
                problems.Add("v= appears more than once; the first is used");
                break;
            case "p":
                Policy = ParsePolicy(value);
                if (Policy is null)
                {
                    problems.Add($"p={value} is not none, quarantine or reject");
                }
                break;
            case "sp":
                SubdomainPolicy = ParsePolicy(value);
                if (SubdomainPolicy is null)
                {
                    SubdomainPolicyInvalid = true;
                    problems.Add($"sp={value} is not none, quarantine or reject");
                }
                break;
            case "np":
                NonExistentSubdomainPolicy = ParsePolicy(value);
                if (NonExistentSubdomainPolicy is null)
                {
                    problems.Add($"np={value} is not none, quarantine or reject; ignored");
                }
                break;
            case "adkim":
                DkimAlignment = ParseAlignment(name, value, problems);
                break;
            case "aspf":
                SpfAlignment = ParseAlignment(name, value, problems);
                break;
            case "pct":
                // RFC 7489 §6.3: an integer from 0 to 100.
                if (IsDigits(value) && int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var percent) && percent <= 100)
                {
                    Percent = percent;
                }
                else
                {
                    problems.Add($"pct={value} is not an integer from 0 to 100; 100 is used");
                }
                break;
            case "ri":
                // RFC 7489 §6.3: a 32-bit unsigned integer.
                if (IsDigits(value) && uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var interval))
                {
                    ReportInterval = interval;
                }
                else
                {
                    problems.Add($"ri={value} is not a 32-bit unsigned integer; 86400 is used");
                }
                break;
            case "fo":
                FailureReportingOptions = ParseList(name, value, v => v is "0" or "1" or "d" or "s", DefaultFailureOptions, problems);
                break;
            case "rf":
                // RFC 7489 §6.3 and §12.4: format names come from a registry that holds only "afrf".
                ReportFormats = ParseList(name, value, v => v == "afrf", DefaultReportFormats, problems);
                break;
            case "rua":
                AggregateReportUris = ParseUris(name, value, problems);
                break;
            case "ruf":
                FailureReportUris = ParseUris(name, value, problems);
                break;
            default:
                // RFC 7489 §6.3: unknown tags MUST be ignored.
                break;
        }
    }

    /// <summary>
    /// none, quarantine or reject, in any case. A prefix is accepted too ("p=n", "p=quar"), as OpenDMARC
    /// accepts "p=n": the three words differ in their first letter, so a prefix is never ambiguous, and a
    /// truncated word is read as the owner meant it. Anything else ("p=bob") is invalid.
    /// </summary>
    private static DmarcPolicy? ParsePolicy(string value)
    {
        if (value.Length == 0)
        {
            return null;
        }
        if ("none".StartsWith(value, StringComparison.OrdinalIgnoreCase))
        {
            return DmarcPolicy.None;
        }
        if ("quarantine".StartsWith(value, StringComparison.OrdinalIgnoreCase))
        {
            return DmarcPolicy.Quarantine;
        }
        if ("reject".StartsWith(value, StringComparison.OrdinalIgnoreCase))
        {
            return DmarcPolicy.Reject;
        }
        return null;
    }

    private static AlignmentMode ParseAlignment(string name, string value, List<string> problems)
    {
        if (value.Equals("r", StringComparison.OrdinalIgnoreCase))
        {
            return AlignmentMode.Relaxed;
        }
        if (value.Equals("s", StringComparison.OrdinalIgnoreCase))
        {
            return AlignmentMode.Strict;
        }
        problems.Add($"{name}={value} is not r or s; relaxed is used");
        return AlignmentMode.Relaxed;
    }

    /// <summary>A colon-separated list (fo=, rf=): the valid entries, or the default when none is valid.</summary>
    private static IReadOnlyList<string> ParseList(string name, string value, Func<string, bool> valid, IReadOnlyList<string> fallback, List<string> problems)
    {
        var entries = new List<string>();
        foreach (var raw in value.Split(':'))
        {
            var entry = raw.Trim(' ', '\t').ToLowerInvariant();
            if (valid(entry))
            {
                if (!entries.Contains(entry))
                {
                    entries.Add(entry);
                }
            }
            else
            {
                problems.Add($"{name}= has the unknown value '{raw.Trim(' ', '\t')}'");
            }
        }
        if (entries.Count == 0)
        {
            problems.Add($"{name}= has no valid value; the default is used");
            return fallback;
        }
        return entries;
    }

    /// <summary>
    /// RFC 7489 §6.4: dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ], comma-separated. Any
    /// absolute URI is syntactically valid (ftp: too); only mailto: is used for sending reports.
    /// </summary>
    private static List<DmarcReportUri> ParseUris(string name, string value, List<string> problems)
    {
        var uris = new List<DmarcReportUri>();
        foreach (var raw in value.Split(','))
        {
            var entry = raw.Trim(' ', '\t');
            if (entry.Length == 0)
            {
                continue;
            }
            ulong? size = null;
            var bang = entry.LastIndexOf('!');
            if (bang > 0 && TryParseSize(entry.AsSpan(bang + 1), out var limit))
            {
                size = limit;
                entry = entry[..bang];
            }
            if (Uri.TryCreate(entry, UriKind.Absolute, out var uri) && entry.Contains(':', StringComparison.Ordinal))
            {
                uris.Add(new DmarcReportUri(uri, size));
            }
            else
            {
                problems.Add($"{name}= has the invalid URI '{raw.Trim(' ', '\t')}'");
            }
        }
        return uris;
    }

    private static bool TryParseSize(ReadOnlySpan<char> text, out ulong size)
    {
        size = 0;
        var multiplier = 1UL;
        if (text.Length > 0 && char.IsAsciiLetter(text[^1]))
        {
            multiplier = char.ToLowerInvariant(text[^1]) switch
            {
                'k' => 1UL << 10,
                'm' => 1UL << 20,
                'g' => 1UL << 30,
                't' => 1UL << 40,
                _ => 0,
            };
            text = text[..^1];
        }
        if (multiplier == 0 || text.IsEmpty || !IsDigits(text) || !ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            return false;
        }
        size = number > ulong.MaxValue / multiplier ? ulong.MaxValue : number * multiplier;
        return true;
    }

    private static bool IsDigits(ReadOnlySpan<char> text) => !text.IsEmpty && !text.ContainsAnyExceptInRange('0', '9');
}
