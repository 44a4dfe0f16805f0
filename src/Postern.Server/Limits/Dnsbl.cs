using System.Net;
using DnsClient;
using DnsClient.Protocol;
using Microsoft.Extensions.Logging;
using Postern.Server.Configuration;
using Postern.Server.Logging;

namespace Postern.Server.Limits;

/// <summary>A list that has the client, with its weight and the answers that counted.</summary>
public sealed record DnsblHit(string Zone, int Weight, IReadOnlyList<IPAddress> Codes)
{
    public override string ToString() => $"{Zone} ({string.Join(" ", Codes)}, weight {Weight})";
}

/// <summary>
/// What the lists say about one client: the weights of the block lists that have it, less those of
/// the allow lists that have it, against Dnsbl.Threshold. Lists that gave no usable answer are in
/// <see cref="Failed"/> and count for nothing.
/// </summary>
public sealed record DnsblVerdict(int Score, int Threshold, IReadOnlyList<DnsblHit> Listed, IReadOnlyList<DnsblHit> Allowed, IReadOnlyList<string> Failed, DateTimeOffset At)
{
    /// <summary>Refused: on at least one block list, and the score reaches the threshold.</summary>
    public bool Refused => Listed.Count > 0 && Score >= Threshold;

    /// <summary>The block lists that have the client, as the refusal names them: <c>bl.example, bl2.example</c>.</summary>
    public string ListedZones => string.Join(", ", Listed.Select(h => h.Zone));

    /// <summary>For the log: which lists have the client, with their answers and weights, and the score.</summary>
    public string Describe() =>
        $"listed at {(Listed.Count == 0 ? "none" : string.Join(", ", Listed))}"
        + (Allowed.Count == 0 ? "" : $"; allowed by {string.Join(", ", Allowed)}")
        + $"; score {Score}, threshold {Threshold}";
}

/// <summary>
/// DNS block and allow lists checked at connect (Postfix's postscreen DNSBL test is the model). All
/// lists are asked at once and the whole check is bounded by Dnsbl.Timeout, so a slow list never
/// holds a client longer than that; a list that times out or fails counts as not listing the client,
/// and is logged at most once a minute so a dead list cannot flood the log. Verdicts are kept per
/// client address for Dnsbl.CacheTime (one minute when a list failed, so it is asked again soon),
/// and connections from one address while its lookup runs share that lookup. The table is keyed by
/// attacker-chosen addresses, so it is bounded: at capacity, expired entries go first, then an
/// eighth of the table.
/// </summary>
public sealed class Dnsbl
{
    /// <summary>How long a verdict with a failed list is kept at most, and how often a failing list is logged.</summary>
    private static readonly TimeSpan FailureInterval = TimeSpan.FromMinutes(1);

    private readonly DnsblOptions _options;
    private readonly IReadOnlyList<DnsList> _block;
    private readonly IReadOnlyList<DnsList> _allow;
    private readonly Func<string, CancellationToken, Task<IReadOnlyList<IPAddress>>> _lookup;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly int _capacity;
    /// <summary>The DNS servers asked, for the line of a list that did not answer in time (null with a test's seam).</summary>
    private readonly string? _servers;
    private readonly Dictionary<IPAddress, Task<DnsblVerdict>> _verdicts = [];
    private readonly Dictionary<string, (DateTimeOffset Logged, int Suppressed)> _failureLog = new(StringComparer.Ordinal);

    /// <summary>Asks DNS with DnsClient, against Dns.Servers (the system resolvers when empty).</summary>
    public Dnsbl(DnsblOptions options, DnsOptions dns, ILogger logger, TimeProvider time)
        : this(options, DnsLookup(dns, options.Timeout), logger, time, servers: ServersAsked(dns))
    {
    }

    private static string ServersAsked(DnsOptions dns) => dns.Servers.Count == 0 ? "the system resolvers" : string.Join(", ", dns.Servers);

    /// <summary>
    /// With <paramref name="lookup"/> as the seam to DNS (tests give their own): the A records of a
    /// name, empty for NXDOMAIN or no data; it throws, with a message saying why, on any failure.
    /// </summary>
    internal Dnsbl(DnsblOptions options, Func<string, CancellationToken, Task<IReadOnlyList<IPAddress>>> lookup, ILogger logger, TimeProvider time, int capacity = 100_000, string? servers = null)
    {
        _servers = servers;
        _options = options;
        _block = options.Lists.Select(l => new DnsList(l.Zone, l.Weight, l.Answers)).ToList();
        _allow = options.AllowLists.Select(l => new DnsList(l.Zone, l.Weight, l.Answers)).ToList();
        _lookup = lookup;
        _logger = logger;
        _time = time;
        _capacity = capacity;
    }

    /// <summary>Addresses whose verdicts are kept (for tests of the bound).</summary>
    internal int Count
    {
        get
        {
            lock (_verdicts)
            {
                return _verdicts.Count;
            }
        }
    }

    /// <summary>What the lists say about <paramref name="ip"/>: from the cache, or asked now. Never throws; done within Dnsbl.Timeout.</summary>
    public Task<DnsblVerdict> CheckAsync(IPAddress ip)
    {
        if (ip.IsIPv4MappedToIPv6)
        {
            ip = ip.MapToIPv4();
        }
        var now = _time.GetUtcNow();
        TaskCompletionSource<DnsblVerdict> mine;
        lock (_verdicts)
        {
            if (_verdicts.TryGetValue(ip, out var known) && !Expired(known, now))
            {
                return known;
            }
            if (_verdicts.Count >= _capacity)
            {
                Evict(now);
            }
            mine = new TaskCompletionSource<DnsblVerdict>(TaskCreationOptions.RunContinuationsAsynchronously);
            _verdicts[ip] = mine.Task;
        }
        // Outside the lock: the lookup logs, and with a seam that answers at once it runs to its end here.
        _ = CompleteAsync(mine, ip);
        return mine.Task;
    }

    private async Task CompleteAsync(TaskCompletionSource<DnsblVerdict> verdict, IPAddress ip)
    {
        try
        {
            verdict.SetResult(await LookupAsync(ip).ConfigureAwait(false));
        }
        catch (Exception e)
        {
            // Not expected (every list's failure is caught), but a session must never wait for ever.
            verdict.SetResult(new DnsblVerdict(0, _options.Threshold, [], [], [e.Message], _time.GetUtcNow()));
        }
    }

    private bool Expired(Task<DnsblVerdict> entry, DateTimeOffset now)
    {
        if (!entry.IsCompleted)
        {
            return false; // still asking: share it
        }
        var v = entry.Result;
        var keep = v.Failed.Count == 0 ? _options.CacheTime : TimeSpan.FromTicks(Math.Min(_options.CacheTime.Ticks, FailureInterval.Ticks));
        return v.At + keep <= now;
    }

    private void Evict(DateTimeOffset now)
    {
        foreach (var (ip, entry) in _verdicts)
        {
            if (Expired(entry, now))
            {
                _verdicts.Remove(ip);
            }
        }
        if (_verdicts.Count >= _capacity)
        {
            foreach (var ip in _verdicts.Keys.Take(Math.Max(1, _capacity / 8)).ToList())
            {
                _verdicts.Remove(ip);
            }
        }
    }

    private async Task<DnsblVerdict> LookupAsync(IPAddress ip)
    {
        // One deadline for every list, asked at once: the check takes at most Dnsbl.Timeout in all.
        using var deadline = new CancellationTokenSource(_options.Timeout, _time);
        var block = _block.Select(l => AskAsync(l, ip, deadline.Token)).ToArray();
        var allow = _allow.Select(l => AskAsync(l, ip, deadline.Token)).ToArray();
        await Task.WhenAll(block.Concat(allow)).ConfigureAwait(false);
        var listed = new List<DnsblHit>();
        var allowed = new List<DnsblHit>();
        var failed = new List<string>();
        var score = 0;
        foreach (var (lists, answers, hits, sign) in new[] { (_block, block, listed, 1), (_allow, allow, allowed, -1) })
        {
            for (var i = 0; i < lists.Count; i++)
            {
                switch (answers[i].Result)
                {
                    case ListAnswer.Listed l:
                        hits.Add(new DnsblHit(lists[i].Zone, lists[i].Weight, l.Codes));
                        score += sign * lists[i].Weight;
                        break;
                    case ListAnswer.Failed f:
                        failed.Add(lists[i].Zone);
                        ReportFailure(lists[i].Zone, ip, f.Reason);
                        break;
                }
            }
        }
        return new DnsblVerdict(score, _options.Threshold, listed, allowed, failed, _time.GetUtcNow());
    }

    /// <summary>One list's answer; a failure of any kind, or no answer by the deadline, is <see cref="ListAnswer.Failed"/>.</summary>
    private async Task<ListAnswer> AskAsync(DnsList list, IPAddress ip, CancellationToken deadline)
    {
        try
        {
            var query = _lookup(DnsList.QueryName(ip, list.Zone), deadline);
            // Observed here, so that a query abandoned at the deadline cannot fault unobserved later.
            _ = query.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            // WaitAsync returns at the deadline even if the DNS library does not stop waiting then.
            return list.Classify(await query.WaitAsync(deadline).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            return new ListAnswer.Failed($"no answer within Dnsbl.Timeout ({_options.Timeout.TotalSeconds:0.###} s)" + (_servers is null ? "" : $" from {_servers}"));
        }
        catch (Exception e)
        {
            return new ListAnswer.Failed(e.Message);
        }
    }

    /// <summary>Logs a failing list, at most once per list per minute; the line says how many failures it stands for.</summary>
    private void ReportFailure(string zone, IPAddress ip, string reason)
    {
        var now = _time.GetUtcNow();
        int suppressed;
        lock (_failureLog)
        {
            // Keyed by the configured zones only: bounded by the configuration.
            if (_failureLog.TryGetValue(zone, out var last) && now - last.Logged < FailureInterval)
            {
                _failureLog[zone] = (last.Logged, last.Suppressed + 1);
                return;
            }
            suppressed = last.Suppressed;
            _failureLog[zone] = (now, 0);
        }
        Log.DnsblFailed(_logger, zone, ip.ToString(), reason, suppressed);
    }

    private static Func<string, CancellationToken, Task<IReadOnlyList<IPAddress>>> DnsLookup(DnsOptions dns, TimeSpan total)
    {
        var options = dns.Servers.Count == 0
            ? new LookupClientOptions()
            : new LookupClientOptions(dns.Servers.Select(Postern.MailAuth.Dns.DnsClientMailAuthDns.ParseServer).ToArray());
        // The verdict is kept per client instead; an NXDOMAIN (not listed, the usual answer) must not
        // send the question on to the next server.
        options.UseCache = false;
        options.ThrowDnsErrors = false;
        options.ContinueOnDnsError = false;
        options.ContinueOnEmptyResponse = false;
        // Room for one retry (a lost UDP packet) within Dnsbl.Timeout.
        options.Timeout = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerMillisecond, Math.Min(dns.Timeout.Ticks, total.Ticks / 2)));
        options.Retries = 1;
        var client = new LookupClient(options);
        var servers = ServersAsked(dns);
        var noAnswer = $"no answer from {servers} (asked twice, {options.Timeout.TotalSeconds:0.###} s each)";
        return async (name, cancellationToken) =>
        {
            IDnsQueryResponse response;
            try
            {
                // The trailing dot: the name is absolute, never completed with a search domain.
                response = await client.QueryAsync(name + ".", QueryType.A, QueryClass.IN, cancellationToken).ConfigureAwait(false);
            }
            catch (DnsResponseException e) when (e.Code == DnsResponseCode.ConnectionTimeout)
            {
                throw new TimeoutException(noAnswer, e);
            }
            return response.Header.ResponseCode switch
            {
                DnsHeaderResponseCode.NoError => response.Answers.ARecords().Select(a => a.Address).ToList(),
                DnsHeaderResponseCode.NotExistentDomain => [],
                // Named, so the line says which server to look at (SERVFAIL, REFUSED...).
                var code => throw new DnsResponseException((DnsResponseCode)code, $"{response.NameServer?.ToString() ?? servers} answered {code}"),
            };
        };
    }
}
