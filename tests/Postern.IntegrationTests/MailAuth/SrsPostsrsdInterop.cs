using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Postern.MailAuth.Srs;

namespace Postern.IntegrationTests.MailAuth;

/// <summary>
/// SRS against an independent peer: Debian's PostSRSd 1.10 (libsrs2 inside), the daemon Postfix users
/// run, started on loopback with the secret file Postern made. Postern and PostSRSd, holding the same
/// secret and forwarding domain, write the same addresses and each reverses the other's: SRS0 from
/// an ordinary sender, SRS1 from another forwarder's SRS0 or SRS1, and neither accepts a tampered one.
/// PostSRSd is asked as Postfix asks it, through its two tcp_table(5) ports.
/// </summary>
public sealed class SrsPostsrsdInterop
{
    private const string Domain = "fwd.example";

    private static readonly string[] Senders =
    [
        "alice@orig.example",
        "Alice.Smith@Orig.Example",
        "a=b+c@orig.example",
        "x=y+z=@sub.orig.example",
        "bounce+list=12@lists.example",
    ];

    // The other forwarders along the way, each with a secret of its own.
    private static readonly SrsRewriter FirstForwarder = new("first-forwarders-secret", TimeProvider.System);
    private static readonly SrsRewriter SecondForwarder = new("second-forwarders-secret", TimeProvider.System);

    private static string Srs0From(string sender) => FirstForwarder.Forward(sender, "fwd1.example")!;

    private static string Srs1From(string sender) => SecondForwarder.Forward(Srs0From(sender), "fwd2.example")!;

    [Fact]
    public async Task PostsrsdReversesWhatPosternForwards()
    {
        await using var postsrsd = await PostsrsdPeer.StartAsync(Domain);
        var postern = new SrsRewriter(postsrsd.Secret, TimeProvider.System);
        using var reverse = await TcpTable.OpenAsync(postsrsd.ReverseEndPoint);
        foreach (var sender in Senders)
        {
            var srs0 = postern.Forward(sender, Domain)!;
            Assert.Equal($"200 {sender}", await reverse.GetAsync(srs0));
            // libsrs2 compares the hash without regard to case, as Postern does.
            Assert.Equal($"200 {sender.ToLowerInvariant()}", await reverse.GetAsync(srs0.ToLowerInvariant()));

            // SRS1 over another forwarder's SRS0: PostSRSd gives back that SRS0, at the first forwarder.
            var srs0ElseWhere = Srs0From(sender);
            Assert.Equal($"200 {srs0ElseWhere}", await reverse.GetAsync(postern.Forward(srs0ElseWhere, Domain)!));
            // SRS1 over an SRS1: still back to the first forwarder's SRS0, past the second.
            Assert.Equal($"200 {srs0ElseWhere}", await reverse.GetAsync(postern.Forward(Srs1From(sender), Domain)!));
        }
    }

    [Fact]
    public async Task PosternReversesWhatPostsrsdForwards()
    {
        await using var postsrsd = await PostsrsdPeer.StartAsync(Domain);
        var postern = new SrsRewriter(postsrsd.Secret, TimeProvider.System);
        using var forward = await TcpTable.OpenAsync(postsrsd.ForwardEndPoint);
        foreach (var sender in Senders)
        {
            var srs0 = await ForwardedAsync(forward, postern, sender);
            Assert.StartsWith("SRS0=", srs0, StringComparison.Ordinal);
            Assert.Equal(new SrsReverse.Valid(sender), postern.Reverse(srs0));

            var srs0ElseWhere = Srs0From(sender);
            var srs1 = await ForwardedAsync(forward, postern, srs0ElseWhere);
            Assert.StartsWith("SRS1=", srs1, StringComparison.Ordinal);
            Assert.Equal(new SrsReverse.Valid(srs0ElseWhere), postern.Reverse(srs1));

            var srs1Again = await ForwardedAsync(forward, postern, Srs1From(sender));
            Assert.StartsWith("SRS1=", srs1Again, StringComparison.Ordinal);
            Assert.Equal(new SrsReverse.Valid(srs0ElseWhere), postern.Reverse(srs1Again));
        }
        // Both leave a sender of the forwarding domain as it is.
        Assert.Equal($"200 alice@{Domain}", await forward.GetAsync($"alice@{Domain}"));
        Assert.Null(postern.Forward($"alice@{Domain}", Domain));
    }

    [Fact]
    public async Task NeitherAcceptsATamperedAddressOfTheOther()
    {
        await using var postsrsd = await PostsrsdPeer.StartAsync(Domain);
        var postern = new SrsRewriter(postsrsd.Secret, TimeProvider.System);
        using var forward = await TcpTable.OpenAsync(postsrsd.ForwardEndPoint);
        using var reverse = await TcpTable.OpenAsync(postsrsd.ReverseEndPoint);

        var ours = postern.Forward("alice@orig.example", Domain)!;
        Assert.StartsWith("200 ", await reverse.GetAsync(ours), StringComparison.Ordinal);
        Assert.StartsWith("500 ", await reverse.GetAsync(ours.Replace("=alice@", "=mallory@", StringComparison.Ordinal)), StringComparison.Ordinal);
        Assert.StartsWith("500 ", await reverse.GetAsync(ours.Replace("=orig.example=", "=evil.example=", StringComparison.Ordinal)), StringComparison.Ordinal);
        var ours1 = postern.Forward(Srs0From("alice@orig.example"), Domain)!;
        Assert.StartsWith("500 ", await reverse.GetAsync(ours1.Replace("=fwd1.example=", "=evil.example=", StringComparison.Ordinal)), StringComparison.Ordinal);

        var theirs = await ForwardedAsync(forward, postern, "alice@orig.example");
        Assert.Equal(new SrsReverse.Invalid("SRS hash does not match"), postern.Reverse(theirs.Replace("=alice@", "=mallory@", StringComparison.Ordinal)));
        Assert.Equal(new SrsReverse.Invalid("SRS hash does not match"), postern.Reverse(theirs.Replace("=orig.example=", "=evil.example=", StringComparison.Ordinal)));

        // Another secret: the same address is a forgery to each.
        var stranger = new SrsRewriter("not-the-shared-secret", TimeProvider.System);
        Assert.StartsWith("500 ", await reverse.GetAsync(stranger.Forward("alice@orig.example", Domain)!), StringComparison.Ordinal);
        Assert.Equal(new SrsReverse.Invalid("SRS hash does not match"), stranger.Reverse(theirs));
    }

    /// <summary>
    /// PostSRSd's forward rewrite of <paramref name="sender"/>, checked to be byte for byte what
    /// Postern writes (on the day before or after the lookup, should midnight UTC fall in between).
    /// </summary>
    private static async Task<string> ForwardedAsync(TcpTable forward, SrsRewriter postern, string sender)
    {
        var before = postern.Forward(sender, Domain);
        var reply = await forward.GetAsync(sender);
        var after = postern.Forward(sender, Domain);
        Assert.StartsWith("200 ", reply, StringComparison.Ordinal);
        var theirs = reply[4..];
        Assert.True(theirs == before || theirs == after, $"PostSRSd wrote {theirs}, Postern {before}");
        return theirs;
    }

    /// <summary>
    /// A client of a Postfix tcp_table(5) server, as Postfix's own: "get KEY\n" on one connection,
    /// one reply line each ("200 value", "500 reason", "400 reason"); the key and value are
    /// URL-encoded (%XX for '%', controls, spaces and non-ASCII bytes).
    /// </summary>
    private sealed class TcpTable : IDisposable
    {
        private readonly TcpClient _client;
        private readonly StreamReader _reader;
        private readonly Stream _stream;

        private TcpTable(TcpClient client)
        {
            _client = client;
            _stream = client.GetStream();
            _reader = new StreamReader(_stream, Encoding.Latin1);
        }

        public static async Task<TcpTable> OpenAsync(IPEndPoint endPoint)
        {
            var client = new TcpClient(AddressFamily.InterNetwork);
            await client.ConnectAsync(endPoint);
            return new TcpTable(client);
        }

        /// <summary>The reply line to "get <paramref name="key"/>", its value decoded.</summary>
        public async Task<string> GetAsync(string key)
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _stream.WriteAsync(Encoding.ASCII.GetBytes($"get {Encode(key)}\n"), cts.Token);
            var line = await _reader.ReadLineAsync(cts.Token) ?? throw new Xunit.Sdk.XunitException($"PostSRSd closed the connection after \"get {key}\"");
            return line.StartsWith("200 ", StringComparison.Ordinal) ? "200 " + Decode(line[4..]) : line;
        }

        private static string Encode(string s)
        {
            var sb = new StringBuilder();
            foreach (var b in Encoding.UTF8.GetBytes(s))
            {
                sb.Append(b is <= 32 or >= 127 or (byte)'%' ? $"%{b:X2}" : ((char)b).ToString());
            }
            return sb.ToString();
        }

        private static string Decode(string s)
        {
            var bytes = new List<byte>();
            for (var i = 0; i < s.Length; i++)
            {
                if (s[i] == '%' && i + 2 < s.Length)
                {
                    bytes.Add(byte.Parse(s.AsSpan(i + 1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                    i += 2;
                }
                else
                {
                    bytes.Add((byte)s[i]);
                }
            }
            return Encoding.UTF8.GetString([.. bytes]);
        }

        public void Dispose()
        {
            _reader.Dispose();
            _client.Dispose();
        }
    }

    /// <summary>
    /// A private PostSRSd (Debian's /usr/sbin/postsrsd) for one test: the forward and reverse tables
    /// on a loopback address and two free ports, in the foreground as a child of the test (no -D),
    /// reading the secret file Postern made (<see cref="SrsRewriter.LoadOrCreateSecret"/>) in its own
    /// temp folder, and dropping to nobody after binding when started as root. Nothing is shared with a
    /// system-wide PostSRSd (10001 and 10002 on 127.0.0.1). A missing postsrsd fails the test: CI installs it.
    /// </summary>
    private sealed class PostsrsdPeer : IAsyncDisposable
    {
        private const string PostsrsdCommand = "/usr/sbin/postsrsd";
        private const string ListenAddress = "127.0.0.44";

        private readonly string _dir;
        private Infrastructure.PeerProcess? _process;

        private PostsrsdPeer(string dir, string secret, IPEndPoint forward, IPEndPoint reverse)
        {
            _dir = dir;
            Secret = secret;
            ForwardEndPoint = forward;
            ReverseEndPoint = reverse;
        }

        /// <summary>The secret both sides hold.</summary>
        public string Secret { get; }

        /// <summary>The forward table: a sender in, its SRS address (or the same sender) out.</summary>
        public IPEndPoint ForwardEndPoint { get; }

        /// <summary>The reverse table: an SRS address in, where it leads out.</summary>
        public IPEndPoint ReverseEndPoint { get; }

        private string Output => _process?.Output ?? "";

        public static async Task<PostsrsdPeer> StartAsync(string domain)
        {
            if (!File.Exists(PostsrsdCommand))
            {
                throw new Xunit.Sdk.XunitException($"PostSRSd is not installed ({PostsrsdCommand} missing); run ./test.sh, which installs it");
            }
            var dir = Path.Combine(Path.GetTempPath(), "postern-postsrsd", Guid.NewGuid().ToString("N")[..10]);
            Directory.CreateDirectory(dir);
            var secretFile = Path.Combine(dir, "postsrsd.secret");
            var ip = IPAddress.Parse(ListenAddress);
            var (forwardPort, reversePort) = TwoFreePorts(ip);
            var peer = new PostsrsdPeer(dir, SrsRewriter.LoadOrCreateSecret(secretFile), new IPEndPoint(ip, forwardPort), new IPEndPoint(ip, reversePort));
            try
            {
                await peer.StartAsync(domain, secretFile);
            }
            catch
            {
                await peer.DisposeAsync();
                throw;
            }
            return peer;
        }

        private async Task StartAsync(string domain, string secretFile)
        {
            var psi = new ProcessStartInfo(PostsrsdCommand)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = _dir,
            };
            string[] args =
            [
                "-4", "-d", domain, "-s", secretFile, "-l", ListenAddress,
                "-f", ForwardEndPoint.Port.ToString(CultureInfo.InvariantCulture),
                "-r", ReverseEndPoint.Port.ToString(CultureInfo.InvariantCulture),
                "-t", "60",
            ];
            foreach (var a in args)
            {
                psi.ArgumentList.Add(a);
            }
            if (Environment.IsPrivilegedProcess)
            {
                // It reads the secret and binds as root, then serves as nobody, as the packaged daemon does.
                psi.ArgumentList.Add("-u");
                psi.ArgumentList.Add("nobody");
            }
            _process = await Infrastructure.PeerProcess.StartAsync(psi, "postsrsd", [ForwardEndPoint, ReverseEndPoint],
                output => output.Contains("secret", StringComparison.Ordinal)
                    ? " (where AppArmor enforces Debian's profile for postsrsd, it may read /etc/postsrsd.secret only)"
                    : "");
        }

        /// <summary>Two different free ports: both sockets are held until both are known.</summary>
        private static (int, int) TwoFreePorts(IPAddress address)
        {
            using var first = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            using var second = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            first.Bind(new IPEndPoint(address, 0));
            second.Bind(new IPEndPoint(address, 0));
            return (((IPEndPoint)first.LocalEndPoint!).Port, ((IPEndPoint)second.LocalEndPoint!).Port);
        }

        public async ValueTask DisposeAsync()
        {
            if (_process is not null)
            {
                await _process.StopAsync();
            }
            await Infrastructure.Peers.StopAsync(null, _dir);
        }
    }
}
