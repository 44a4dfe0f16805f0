using System.Net;

namespace Postern.Server.Limits;

/// <summary>
/// The unit a client is counted by: an IPv4 address as it is, an IPv6 address by its /64 (one
/// customer's network gets a whole /64, so counting single IPv6 addresses would count nothing).
/// IPv4-mapped IPv6 addresses count as the IPv4 address.
/// </summary>
public static class ClientKey
{
    public static IPAddress For(IPAddress ip)
    {
        if (ip.IsIPv4MappedToIPv6)
        {
            return ip.MapToIPv4();
        }
        if (ip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            return ip;
        }
        Span<byte> bytes = stackalloc byte[16];
        ip.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes);
    }

    /// <summary>How the key reads in logs: <c>192.0.2.7</c> or <c>2001:db8:1:2::/64</c>.</summary>
    public static string Describe(IPAddress key) =>
        key.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"{key}/64" : key.ToString();
}
