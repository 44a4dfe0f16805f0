using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Postern.Server.Configuration;

namespace Postern.Server.Listening;

/// <summary>An endpoint another process listens on: the key that wanted it, and who holds it when that can be seen.</summary>
public sealed class EndpointInUseException(string key, IPEndPoint endpoint, string? holder)
    : IOException($"{key}: {endpoint} is in use{(holder is null ? "" : $" by {holder}")}; stop that server or choose another endpoint")
{
    public IPEndPoint Endpoint { get; } = endpoint;
}

/// <summary>
/// Listening sockets that are this server's alone. .NET's ReuseAddress sets SO_REUSEPORT too on
/// Linux, which lets a second server bind the same port and the kernel split connections between
/// the two; only SO_REUSEADDR is set here (a restart may bind while old connections sit in TIME_WAIT).
/// </summary>
public static class ListenerSocket
{
    private const int SolSocket = 1;   // <asm-generic/socket.h>
    private const int SoReuseAddr = 2;

    /// <summary>
    /// Binds (the step that needs root for a port below 1024, and that fails when another socket
    /// listens there: <see cref="EndpointInUseException"/>, naming it and its holder). Listening
    /// comes later (<see cref="SmtpListener.Use"/>), once the server holds its data directory's lock:
    /// whoever sees the port accept connections may count on the server being up.
    /// </summary>
    public static Socket Bind(ListenerOptions listener, int index)
    {
        var endpoint = IPEndPoint.Parse(listener.Endpoint);
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (!OperatingSystem.IsWindows())
            {
                socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
            }
            if (endpoint.AddressFamily == AddressFamily.InterNetworkV6 && endpoint.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }
            socket.Bind(endpoint);
            return socket;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket.Dispose();
            throw new EndpointInUseException($"Listeners[{index}].Endpoint", endpoint, Holder(endpoint));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AccessDenied)
        {
            socket.Dispose();
            throw new UnauthorizedAccessException($"Listeners[{index}].Endpoint: {endpoint}: a port below 1024 needs root (serve binds it, then runs as its user) or CAP_NET_BIND_SERVICE (contrib/postern.service gives it)", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Binds every listener, in order; on a failure the ones bound so far are closed.</summary>
    public static IReadOnlyList<Socket> BindAll(IReadOnlyList<ListenerOptions> listeners)
    {
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < listeners.Count; i++)
            {
                sockets.Add(Bind(listeners[i], i));
            }
            return sockets;
        }
        catch
        {
            sockets.ForEach(s => s.Dispose());
            throw;
        }
    }

    /// <summary>
    /// Who listens where <paramref name="endpoint"/> would: "pid 1234 (postern)" from /proc (the
    /// listening socket's inode in /proc/net/tcp*, then the process with that socket among its
    /// descriptors), or null when it cannot be seen (another user's process, not as root).
    /// </summary>
    public static string? Holder(IPEndPoint endpoint)
    {
        try
        {
            var inodes = ListeningInodes(endpoint);
            if (inodes.Count == 0)
            {
                return null;
            }
            foreach (var proc in Directory.EnumerateDirectories("/proc"))
            {
                var pid = Path.GetFileName(proc);
                if (!pid.All(char.IsAsciiDigit))
                {
                    continue;
                }
                try
                {
                    foreach (var fd in Directory.EnumerateFileSystemEntries(Path.Combine(proc, "fd")))
                    {
                        var target = new FileInfo(fd).LinkTarget;
                        if (target is not null && target.StartsWith("socket:[", StringComparison.Ordinal) && inodes.Contains(target[8..^1]))
                        {
                            var name = File.ReadAllText(Path.Combine(proc, "comm")).Trim();
                            return $"pid {pid} ({name})";
                        }
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // Another user's process, or one that just ended.
                }
            }
            return "another process";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Inodes of the sockets listening (state 0A) on the endpoint's port at its address or a wildcard (or at any address, for a wildcard).</summary>
    private static HashSet<string> ListeningInodes(IPEndPoint endpoint)
    {
        var inodes = new HashSet<string>(StringComparer.Ordinal);
        foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(table))
            {
                continue;
            }
            foreach (var line in File.ReadLines(table).Skip(1))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 10 || f[3] != "0A")
                {
                    continue;
                }
                var colon = f[1].IndexOf(':');
                var port = int.Parse(f[1].AsSpan(colon + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (port != endpoint.Port)
                {
                    continue;
                }
                var address = ParseProcAddress(f[1][..colon]);
                if (IsAny(address) || IsAny(endpoint.Address) || Same(address, endpoint.Address))
                {
                    inodes.Add(f[9]);
                }
            }
        }
        return inodes;
    }

    // The kernel prints an address as the hex of its 32-bit words in host (little-endian) order.
    private static IPAddress ParseProcAddress(string hex)
    {
        var bytes = new byte[hex.Length / 2];
        for (var word = 0; word < bytes.Length / 4; word++)
        {
            var value = uint.Parse(hex.AsSpan(word * 8, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            BitConverter.TryWriteBytes(bytes.AsSpan(word * 4, 4), value);
        }
        return new IPAddress(bytes);
    }

    private static bool IsAny(IPAddress a) => a.Equals(IPAddress.Any) || a.Equals(IPAddress.IPv6Any);

    private static bool Same(IPAddress a, IPAddress b) =>
        (a.IsIPv4MappedToIPv6 ? a.MapToIPv4() : a).Equals(b.IsIPv4MappedToIPv6 ? b.MapToIPv4() : b);
}
