using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>Free loopback ports for peers that must be told their port before they start.</summary>
internal static class Ports
{
    /// <summary>A port the system hands out as free on <paramref name="address"/> (TCP, or UDP for DNS).</summary>
    public static int Free(IPAddress address, ProtocolType protocol = ProtocolType.Tcp)
    {
        using var socket = new Socket(address.AddressFamily, protocol == ProtocolType.Udp ? SocketType.Dgram : SocketType.Stream, protocol);
        socket.Bind(new IPEndPoint(address, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>
    /// One TCP port free on every address at once, for servers on several loopback addresses that all
    /// deliver to the same port (Delivery.RemotePort), as real ones all listen on 25.
    /// </summary>
    public static int FreeOnAll(params IPAddress[] addresses)
    {
        for (var attempt = 0; ; attempt++)
        {
            var port = Free(addresses[0]);
            var sockets = new List<Socket>();
            try
            {
                foreach (var a in addresses)
                {
                    var s = new Socket(a.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                    sockets.Add(s);
                    s.Bind(new IPEndPoint(a, port));
                }
                return port;
            }
            catch (SocketException) when (attempt < 20)
            {
                // Taken on one of them: another try.
            }
            finally
            {
                sockets.ForEach(s => s.Dispose());
            }
        }
    }

    /// <summary>
    /// Whether /proc/net/tcp shows a socket listening (state 0A) on the IPv4 endpoint: how a test
    /// knows a peer process it started is ready, without connecting to it (a connection would count).
    /// </summary>
    public static bool IsListening(IPEndPoint endPoint)
    {
        // The kernel writes the IPv4 address as the hex of its 32-bit value in host order.
        var address = BitConverter.ToUInt32(endPoint.Address.GetAddressBytes()).ToString("X8", CultureInfo.InvariantCulture);
        var wanted = $"{address}:{endPoint.Port:X4}";
        return File.ReadLines("/proc/net/tcp").Skip(1)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Any(f => f.Length > 3 && f[1] == wanted && f[3] == "0A");
    }
}
