using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>
/// A real authoritative DNS server (NSD from Debian) on a loopback address, serving zones the test
/// gives as zone-file text. A zone listed with null text is configured without data, so NSD answers
/// SERVFAIL for it. A missing nsd fails the test: CI installs it.
/// </summary>
public sealed class DnsServer : IDisposable
{
    private readonly Process _process;
    private readonly string _dir;

    private DnsServer(Process process, string dir, IPEndPoint endpoint)
    {
        _process = process;
        _dir = dir;
        EndPoint = endpoint;
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>As Dns.Servers wants it: "IP:port".</summary>
    public string Server => $"{EndPoint.Address}:{EndPoint.Port}";

    /// <summary>A zone file for <paramref name="origin"/>: the SOA and NS every zone needs, then the records given.</summary>
    public static string Zone(string origin, string records) => $"""
        $ORIGIN {origin}.
        $TTL 60
        @ IN SOA ns.{origin}. admin.{origin}. 1 3600 600 86400 60
        @ IN NS  ns.{origin}.
        ns IN A 127.0.0.53

        """ + records;

    public static async Task<DnsServer> StartAsync(IReadOnlyDictionary<string, string?> zones)
    {
        var dir = Path.Combine(Path.GetTempPath(), "postern-dns", Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dir);
        var address = IPAddress.Parse($"127.0.53.{Random.Shared.Next(1, 250)}");
        var port = Ports.Free(address, ProtocolType.Udp);
        var conf = new StringBuilder($$"""
            server:
              ip-address: {{address}}@{{port}}
              port: {{port}}
              username: ""
              chroot: ""
              zonesdir: "{{dir}}"
              pidfile: "{{dir}}/nsd.pid"
              database: ""
              zonelistfile: "{{dir}}/zone.list"
              xfrdfile: "{{dir}}/xfrd.state"
              xfrdir: "{{dir}}"
              server-count: 1
              hide-version: yes
              # NSD's response rate limiting (200 answers/s per client) would drop answers when a
              # test delivers hundreds of messages at once: a dropped answer is a timeout, a deferral.
              rrl-ratelimit: 0
            remote-control:
              control-enable: no

            """);
        foreach (var (name, text) in zones)
        {
            conf.Append($"zone:\n  name: \"{name}\"\n  zonefile: \"{name}.zone\"\n");
            if (text is not null)
            {
                File.WriteAllText(Path.Combine(dir, $"{name}.zone"), text);
            }
        }
        File.WriteAllText(Path.Combine(dir, "nsd.conf"), conf.ToString());
        var psi = new ProcessStartInfo("/usr/sbin/nsd") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-d", "-c", Path.Combine(dir, "nsd.conf") })
        {
            psi.ArgumentList.Add(a);
        }
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new Xunit.Sdk.XunitException($"nsd is not installed ({e.Message}); run .ci/run, which installs it");
        }
        var server = new DnsServer(process, dir, new IPEndPoint(address, port));
        await server.WaitReadyAsync(zones.First(z => z.Value is not null).Key);
        return server;
    }


    private async Task WaitReadyAsync(string zone)
    {
        var client = new DnsClient.LookupClient(new DnsClient.LookupClientOptions(new DnsClient.NameServer(EndPoint))
        {
            UseCache = false,
            Timeout = TimeSpan.FromMilliseconds(200),
            Retries = 0,
            ThrowDnsErrors = false,
        });
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"nsd exited: {await _process.StandardError.ReadToEndAsync()}");
            }
            try
            {
                var r = await client.QueryAsync(zone, DnsClient.QueryType.SOA);
                if (!r.HasError && r.Answers.Count > 0)
                {
                    return;
                }
            }
            catch (DnsClient.DnsResponseException)
            {
            }
            await Task.Delay(50);
        }
        throw new TimeoutException("nsd did not answer within 10 s");
    }

    public void Dispose()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
