using System.Text;
using System.Text.RegularExpressions;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Filters.Milter;

namespace Postern.IntegrationTests.Filters;

/// <summary>
/// OpenDKIM (Debian's opendkim) in signing mode, a private instance with a key made by
/// opendkim-genkey, on a unix socket and on a loopback TCP port: the message driven through
/// <see cref="MilterSession"/> gets a DKIM-Signature field inserted, and the message with that change
/// applied (<see cref="MilterHeaderChanges"/>) verifies with dkimpy against the key's TXT record.
/// </summary>
public sealed partial class OpenDkimSignsThroughTheMilter(OpenDkimSignsThroughTheMilter.Peer peer) : IClassFixture<OpenDkimSignsThroughTheMilter.Peer>
{
    [Theory]
    [InlineData("unix")]
    [InlineData("inet")]
    public async Task TheSignatureIsInsertedAndVerifies(string transport)
    {
        var message = MilterPeers.Message("alice@example.org", "bob@example.com", "Signed", "Hello Bob,\n\nthis one is signed.\n\nAlice\n");
        var milter = transport == "unix" ? peer.UnixMilter : peer.InetMilter;
        var (result, _) = await MilterPeers.PassAsync(milter, "alice@example.org", "bob@example.com", message);
        Assert.True(result.Verdict.Kind is MilterVerdictKind.Continue or MilterVerdictKind.Accept, $"{result.Verdict} {peer.Output}");
        var signature = result.Modifications.OfType<MilterModification.InsertHeader>().SingleOrDefault(h => h.Name == "DKIM-Signature");
        Assert.True(signature is not null, $"no DKIM-Signature inserted: {string.Join("; ", result.Modifications)} {peer.Output}");
        Assert.Contains("d=example.org", signature.Value);
        Assert.Contains("s=test", signature.Value);

        var split = message.AsSpan().IndexOf("\r\n\r\n"u8) + 4;
        var signed = MilterHeaderChanges.Apply(message.AsSpan(0, split), result.Modifications).Concat(message[split..]).ToArray();
        var verify = await Peers.RunAsync("/usr/bin/python3", ["-c", VerifyScript, peer.PublicKeyRecord], Encoding.ASCII.GetString(signed));
        Assert.True(verify.ExitCode == 0 && verify.Stdout.Trim() == "True", $"dkimpy: {verify.All}\n{Encoding.ASCII.GetString(signed)}");
    }

    [Fact]
    public async Task ATamperedBodyDoesNotVerify()
    {
        // Guards the check above: dkimpy must be able to say no.
        var message = MilterPeers.Message("alice@example.org", "bob@example.com", "Signed", "Original words.\n");
        var (result, _) = await MilterPeers.PassAsync(peer.UnixMilter, "alice@example.org", "bob@example.com", message);
        var split = message.AsSpan().IndexOf("\r\n\r\n"u8) + 4;
        var tampered = MilterHeaderChanges.Apply(message.AsSpan(0, split), result.Modifications).Concat("Other words.\r\n"u8.ToArray()).ToArray();
        var verify = await Peers.RunAsync("/usr/bin/python3", ["-c", VerifyScript, peer.PublicKeyRecord], Encoding.ASCII.GetString(tampered));
        Assert.Equal("False", verify.Stdout.Trim());
    }

    /// <summary>dkimpy with the TXT record given on the command line instead of DNS.</summary>
    private const string VerifyScript = """
        import sys, dkim
        record = sys.argv[1].encode()
        message = sys.stdin.buffer.read()
        print(dkim.verify(message, dnsfunc=lambda name, timeout=5: record))
        """;

    [GeneratedRegex("\"([^\"]*)\"")]
    private static partial Regex Quoted();

    /// <summary>opendkim with its own key and configuration, listening on a unix socket and a TCP port.</summary>
    public sealed class Peer : IAsyncLifetime
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("postern-opendkim-").FullName;
        private PeerProcess? _unix;
        private PeerProcess? _inet;

        public Milter UnixMilter { get; private set; } = null!;

        public Milter InetMilter { get; private set; } = null!;

        /// <summary>The public key's TXT record as opendkim-genkey wrote it (test.txt), its strings joined.</summary>
        public string PublicKeyRecord { get; private set; } = "";

        public string Output => $"opendkim (unix): {_unix?.Output}\nopendkim (inet): {_inet?.Output}";

        public async Task InitializeAsync()
        {
            var genkey = await Peers.RunAsync("/usr/sbin/opendkim-genkey", ["-D", _dir, "-d", "example.org", "-s", "test"]);
            Assert.True(genkey.ExitCode == 0, $"opendkim-genkey: {genkey.All}");
            PublicKeyRecord = string.Concat(Quoted().Matches(File.ReadAllText(Path.Combine(_dir, "test.txt"))).Select(m => m.Groups[1].Value));
            var socket = Path.Combine(_dir, "opendkim.sock");
            _unix = await Start("unix", $"local:{socket}", () => File.Exists(socket), $"make {socket}");
            UnixMilter = MilterPeers.MilterAt("opendkim", "unix:" + socket);
            var port = Ports.Free(System.Net.IPAddress.Loopback);
            _inet = await Start("inet", $"inet:{port}@127.0.0.1", () => Ports.IsListening(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port)), $"listen on 127.0.0.1:{port}");
            InetMilter = MilterPeers.MilterAt("opendkim", $"inet:127.0.0.1:{port}");
        }

        private Task<PeerProcess> Start(string name, string socket, Func<bool> ready, string readyMeans)
        {
            // Signing mode for the test network the client is in (InternalHosts); RequireSafeKeys off
            // because the key is under /tmp, which others may write to.
            var config = Path.Combine(_dir, $"{name}.conf");
            File.WriteAllText(config, $"""
                Mode s
                Domain example.org
                Selector test
                KeyFile {Path.Combine(_dir, "test.private")}
                Socket {socket}
                PidFile {Path.Combine(_dir, name + ".pid")}
                Background no
                Syslog no
                InternalHosts 192.0.2.0/24
                Canonicalization relaxed/simple
                RequireSafeKeys false
                """);
            return PeerProcess.StartAsync(MilterPeers.Command("/usr/sbin/opendkim", "-f", "-x", config), "opendkim", ready, readyMeans);
        }

        public async Task DisposeAsync()
        {
            foreach (var p in new[] { _unix, _inet })
            {
                if (p is not null)
                {
                    await p.StopAsync();
                }
            }
            Directory.Delete(_dir, recursive: true);
        }
    }
}
