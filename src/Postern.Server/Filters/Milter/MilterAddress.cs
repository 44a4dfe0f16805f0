using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Postern.Server.Filters.Milter;

/// <summary>
/// Where a milter listens, in the forms Postfix and Sendmail take: <c>unix:/path</c> (or
/// <c>local:/path</c>, or just <c>/path</c>) for a unix socket; <c>inet:host:port</c> (Postfix),
/// <c>inet:port@host</c> (Sendmail, libmilter's smfi_setconn), <c>inet6:port@host</c>, or plain
/// <c>host:port</c> / <c>[v6]:port</c> for TCP.
/// </summary>
public static class MilterAddress
{
    public static bool TryParse(string? text, out EndPoint endPoint)
    {
        endPoint = null!;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }
        text = text.Trim();
        foreach (var prefix in new[] { "unix:", "local:" })
        {
            if (text.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                return TryUnix(text[prefix.Length..], out endPoint);
            }
        }
        if (text.StartsWith('/'))
        {
            return TryUnix(text, out endPoint);
        }
        if (text.StartsWith("inet6:", StringComparison.OrdinalIgnoreCase))
        {
            text = text[6..];
        }
        else if (text.StartsWith("inet:", StringComparison.OrdinalIgnoreCase))
        {
            text = text[5..];
        }
        string host;
        string port;
        var at = text.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            // Sendmail's port@host.
            port = text[..at];
            host = text[(at + 1)..];
        }
        else
        {
            var colon = text.LastIndexOf(':');
            if (colon <= 0)
            {
                return false;
            }
            host = text[..colon];
            port = text[(colon + 1)..];
        }
        host = host.StartsWith('[') && host.EndsWith(']') ? host[1..^1] : host;
        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var p) || p is < 1 or > 65535 || host.Length == 0)
        {
            return false;
        }
        if (IPAddress.TryParse(host, out var ip))
        {
            endPoint = new IPEndPoint(ip, p);
            return true;
        }
        if (Uri.CheckHostName(host) != UriHostNameType.Dns)
        {
            return false;
        }
        endPoint = new DnsEndPoint(host, p);
        return true;
    }

    private static bool TryUnix(string path, out EndPoint endPoint)
    {
        endPoint = null!;
        // sockaddr_un.sun_path holds 108 bytes with the NUL on Linux.
        if (!path.StartsWith('/') || System.Text.Encoding.UTF8.GetByteCount(path) > 107)
        {
            return false;
        }
        endPoint = new UnixDomainSocketEndPoint(path);
        return true;
    }

    /// <summary>A socket for <paramref name="endPoint"/>: unix, or TCP (dual-mode for a host name).</summary>
    internal static Socket SocketFor(EndPoint endPoint) => endPoint switch
    {
        UnixDomainSocketEndPoint => new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified),
        IPEndPoint ip => new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true },
        _ => new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true },
    };
}
