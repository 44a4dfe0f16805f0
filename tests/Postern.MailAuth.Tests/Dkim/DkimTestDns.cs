using System.Net;
using Postern.MailAuth.Dns;

namespace Postern.MailAuth.Tests.Dkim;

/// <summary>TXT answers from a table (names are case-insensitive); other names are NXDOMAIN. Counts the questions.</summary>
internal sealed class DkimTestDns : IMailAuthDns
{
    private readonly Dictionary<string, DnsAnswer<string>> _txt = new(StringComparer.OrdinalIgnoreCase);

    public int Queries { get; private set; }

    public DkimTestDns Add(string name, string txt)
    {
        _txt[name.TrimEnd('.')] = _txt.TryGetValue(name.TrimEnd('.'), out var a) && a.Status == DnsStatus.Ok ? DnsAnswer<string>.Of([.. a.Records, txt]) : DnsAnswer<string>.Of(txt);
        return this;
    }

    public DkimTestDns Set(string name, DnsAnswer<string> answer)
    {
        _txt[name.TrimEnd('.')] = answer;
        return this;
    }

    public Task<DnsAnswer<string>> TxtAsync(string name, CancellationToken cancellationToken = default)
    {
        Queries++;
        return Task.FromResult(_txt.GetValueOrDefault(name.TrimEnd('.'), DnsAnswer<string>.NxDomain));
    }

    public Task<DnsAnswer<IPAddress>> AAsync(string name, CancellationToken cancellationToken = default) => throw new NotSupportedException();

    public Task<DnsAnswer<IPAddress>> AaaaAsync(string name, CancellationToken cancellationToken = default) => throw new NotSupportedException();

    public Task<DnsAnswer<MxRecord>> MxAsync(string name, CancellationToken cancellationToken = default) => throw new NotSupportedException();

    public Task<DnsAnswer<string>> PtrAsync(IPAddress address, CancellationToken cancellationToken = default) => throw new NotSupportedException();
}
