using System.Net;
using System.Net.Sockets;
using System.Text;
using Postern.MailAuth.Dns;

namespace Postern.MailAuth.Tests.Spf;

/// <summary>
/// An in-memory DNS for the SPF suites: names (case-insensitive, trailing dot ignored) with their TXT,
/// A, AAAA, MX and PTR records, a CNAME, or a timeout. A question about a name that is not there is
/// NXDOMAIN; about a name without records of the type, an empty answer (NODATA) — or a timeout when
/// the name is marked so (openspf "TIMEOUT"). CNAMEs are followed; a loop is a temporary error.
/// Reads are safe from several threads; the zone is built before it is used.
/// </summary>
internal sealed class ZoneDns : IMailAuthDns
{
    private const int MaxCnameHops = 8;

    private readonly Dictionary<string, Node> _nodes = new(StringComparer.OrdinalIgnoreCase);
    private int _queries;

    /// <summary>Names for which every question fails with a temporary error (mail-auth's "_dns_error." names).</summary>
    public Func<string, bool>? TempErrorFor { get; init; }

    /// <summary>How many questions were asked.</summary>
    public int Queries => _queries;

    /// <summary>The records of a name, created empty (so the name exists) when first asked for.</summary>
    public Node this[string name]
    {
        get
        {
            name = Normalize(name);
            if (!_nodes.TryGetValue(name, out var node))
            {
                node = new Node();
                _nodes[name] = node;
            }
            return node;
        }
    }

    public IEnumerable<string> Names => _nodes.Keys;

    public ZoneDns Clone()
    {
        var copy = new ZoneDns { TempErrorFor = TempErrorFor };
        foreach (var (name, node) in _nodes)
        {
            copy._nodes[name] = node.Clone();
        }
        return copy;
    }

    public Task<DnsAnswer<string>> TxtAsync(string name, CancellationToken cancellationToken = default) => Answer(name, n => n.Txt);

    public Task<DnsAnswer<IPAddress>> AAsync(string name, CancellationToken cancellationToken = default) => Answer(name, n => n.A);

    public Task<DnsAnswer<IPAddress>> AaaaAsync(string name, CancellationToken cancellationToken = default) => Answer(name, n => n.Aaaa);

    public Task<DnsAnswer<MxRecord>> MxAsync(string name, CancellationToken cancellationToken = default) => Answer(name, n => n.Mx);

    public Task<DnsAnswer<string>> PtrAsync(IPAddress address, CancellationToken cancellationToken = default) =>
        Answer(ReverseName(address), n => n.Ptr.Select(p => p.TrimEnd('.')).ToList());

    /// <summary>The in-addr.arpa or ip6.arpa name of an address.</summary>
    public static string ReverseName(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            return string.Join('.', bytes.Reverse()) + ".in-addr.arpa";
        }
        var name = new StringBuilder();
        foreach (var b in bytes.Reverse())
        {
            name.Append("0123456789abcdef"[b & 0xF]).Append('.').Append("0123456789abcdef"[b >> 4]).Append('.');
        }
        return name.Append("ip6.arpa").ToString();
    }

    private Task<DnsAnswer<T>> Answer<T>(string name, Func<Node, List<T>> records)
    {
        Interlocked.Increment(ref _queries);
        name = Normalize(name);
        if (TempErrorFor?.Invoke(name) == true)
        {
            return Task.FromResult(DnsAnswer<T>.TempError);
        }
        for (var hops = 0; ; hops++)
        {
            if (!_nodes.TryGetValue(name, out var node))
            {
                return Task.FromResult(DnsAnswer<T>.NxDomain);
            }
            var found = records(node);
            if (found.Count > 0)
            {
                return Task.FromResult(new DnsAnswer<T>(DnsStatus.Ok, found.ToList()));
            }
            if (node.Cname is not null)
            {
                if (hops >= MaxCnameHops)
                {
                    return Task.FromResult(DnsAnswer<T>.TempError);
                }
                name = Normalize(node.Cname);
                continue;
            }
            return Task.FromResult(node.Timeout ? DnsAnswer<T>.TempError : new DnsAnswer<T>(DnsStatus.Ok, []));
        }
    }

    private static string Normalize(string name) => name.EndsWith('.') ? name[..^1] : name;

    /// <summary>The records of one name.</summary>
    public sealed class Node
    {
        public List<string> Txt { get; set; } = [];
        public List<IPAddress> A { get; set; } = [];
        public List<IPAddress> Aaaa { get; set; } = [];
        public List<MxRecord> Mx { get; set; } = [];
        public List<string> Ptr { get; set; } = [];
        public string? Cname { get; set; }
        public bool Timeout { get; set; }

        public Node Clone() => new()
        {
            Txt = [.. Txt],
            A = [.. A],
            Aaaa = [.. Aaaa],
            Mx = [.. Mx],
            Ptr = [.. Ptr],
            Cname = Cname,
            Timeout = Timeout,
        };
    }
}
