using System.Net;
using Postern.MailAuth.Dns;

namespace Postern.MailAuth.Tests.Dmarc;

/// <summary>
/// An in-memory <see cref="IMailAuthDns"/>: names with TXT or A records, names that time out, and
/// NXDOMAIN for the rest. A name that only has records of another type answers NODATA. Every question
/// is recorded, so tests can check which lookups discovery made.
/// </summary>
internal sealed class FakeDns : IMailAuthDns
{
    private readonly Dictionary<string, List<string>> _txt = new(StringComparer.OrdinalIgnoreCase);
    private readonly Dictionary<string, List<IPAddress>> _a = new(StringComparer.OrdinalIgnoreCase);
    private readonly HashSet<string> _failing = new(StringComparer.OrdinalIgnoreCase);

    public List<string> Questions { get; } = [];

    public FakeDns Txt(string name, params string[] records)
    {
        if (!_txt.TryGetValue(name, out var list))
        {
            _txt[name] = list = [];
        }
        list.AddRange(records);
        return this;
    }

    public FakeDns A(string name, string address)
    {
        if (!_a.TryGetValue(name, out var list))
        {
            _a[name] = list = [];
        }
        list.Add(IPAddress.Parse(address));
        return this;
    }

    /// <summary>Every question about this name ends in a temporary error (a timeout or SERVFAIL).</summary>
    public FakeDns Failing(string name)
    {
        _failing.Add(name);
        return this;
    }

    public Task<DnsAnswer<string>> TxtAsync(string name, CancellationToken cancellationToken = default) =>
        Answer("TXT", name, _txt);

    public Task<DnsAnswer<IPAddress>> AAsync(string name, CancellationToken cancellationToken = default) =>
        Answer("A", name, _a);

    public Task<DnsAnswer<IPAddress>> AaaaAsync(string name, CancellationToken cancellationToken = default) =>
        Answer("AAAA", name, new Dictionary<string, List<IPAddress>>());

    public Task<DnsAnswer<MxRecord>> MxAsync(string name, CancellationToken cancellationToken = default) =>
        Answer("MX", name, new Dictionary<string, List<MxRecord>>());

    public Task<DnsAnswer<string>> PtrAsync(IPAddress address, CancellationToken cancellationToken = default) =>
        throw new NotSupportedException("DMARC never asks for PTR records");

    private Task<DnsAnswer<T>> Answer<T>(string type, string name, Dictionary<string, List<T>> records)
    {
        lock (Questions)
        {
            Questions.Add($"{type} {name}");
        }
        if (_failing.Contains(name))
        {
            return Task.FromResult(DnsAnswer<T>.TempError);
        }
        if (records.TryGetValue(name, out var found))
        {
            return Task.FromResult(new DnsAnswer<T>(DnsStatus.Ok, found));
        }
        return Task.FromResult(Exists(name) ? new DnsAnswer<T>(DnsStatus.Ok, []) : DnsAnswer<T>.NxDomain);
    }

    private bool Exists(string name) => _txt.ContainsKey(name) || _a.ContainsKey(name);
}
