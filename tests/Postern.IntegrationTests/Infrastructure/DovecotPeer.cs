using System.Diagnostics;
using System.Net;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>
/// A private Dovecot (Debian's dovecot-imapd, dovecot-lmtpd, dovecot-sieve) serving a Postern data
/// directory with exactly the documented configuration, contrib/dovecot/10-postern.conf, its data
/// directory path the only thing changed. Around it, what only a private instance needs: its own
/// base_dir (so nothing is shared with a system-wide Dovecot), a log file, IMAP on a free loopback
/// port, LMTP on a unix socket in its folder, no TLS. <c>dovecot -F</c> runs in the foreground as a
/// child of the test. The data directory is set up as README says: owned by the system user
/// `postern`, the passwd file postern:postern mode 0640.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class DovecotPeer : IAsyncDisposable
{
    private const string DovecotCommand = "/usr/sbin/dovecot";
    private readonly string _dir;
    private PeerProcess? _process;

    private DovecotPeer(string dir, IPEndPoint imap)
    {
        _dir = dir;
        Imap = imap;
    }

    /// <summary>Where IMAP listens (plaintext; Dovecot counts loopback as secure).</summary>
    public IPEndPoint Imap { get; }

    /// <summary>The LMTP socket, for Delivery.Lmtp.</summary>
    public string LmtpSocket => Path.Combine(_dir, "run", "lmtp");

    public string LogFile => Path.Combine(_dir, "dovecot.log");

    /// <summary>The log so far, for failure messages.</summary>
    public string Log => File.Exists(LogFile) ? File.ReadAllText(LogFile) : "(no log)";

    /// <summary>The documented configuration file in the repository.</summary>
    public static string DocumentedConfiguration
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            {
                var file = Path.Combine(d.FullName, "contrib", "dovecot", "10-postern.conf");
                if (File.Exists(file))
                {
                    return file;
                }
            }
            throw new FileNotFoundException("contrib/dovecot/10-postern.conf not found above " + AppContext.BaseDirectory);
        }
    }

    /// <summary>
    /// Creates the system user postern (as the README says) if missing. (The user dovecot needs no
    /// membership: Dovecot's auth process gets the group from extra_groups in 10-postern.conf.)
    /// </summary>
    public static async Task EnsurePosternUserAsync()
    {
        if ((await Peers.RunAsync("id", ["-u", "postern"])).ExitCode != 0)
        {
            var made = await Peers.RunAsync("adduser", ["--system", "--group", "--no-create-home", "postern"]);
            Assert.True(made.ExitCode == 0, "adduser --system --group postern: " + made.All);
        }
    }

    /// <summary>
    /// A data directory as README sets it up: owned by postern, mode 0711, the passwd file
    /// postern:postern 0640 (empty; `postern user add` fills it and keeps that).
    /// </summary>
    public static async Task<string> PrepareDataDirectoryAsync(string parent)
    {
        await EnsurePosternUserAsync();
        // The temp folders above must let postern and dovecot pass.
        File.SetUnixFileMode(parent, (UnixFileMode)0b111_101_101);
        var data = Path.Combine(parent, "data");
        await Run("install", "-d", "-o", "postern", "-g", "postern", "-m", "0711", data);
        await Run("install", "-o", "postern", "-g", "postern", "-m", "0640", "/dev/null", Path.Combine(data, "passwd"));
        return data;
    }

    /// <summary>Starts Dovecot for <paramref name="dataDirectory"/>; <paramref name="extra"/> adds settings (a quota, for example).</summary>
    public static async Task<DovecotPeer> StartAsync(string dataDirectory, string extra = "")
    {
        if (!File.Exists(DovecotCommand) || !File.Exists("/usr/lib/dovecot/lmtp") || !File.Exists("/usr/lib/dovecot/modules/lib90_sieve_plugin.so"))
        {
            throw new Xunit.Sdk.XunitException("Dovecot is not installed (dovecot-imapd, dovecot-lmtpd, dovecot-sieve); run ./test.sh, which installs it");
        }
        var dir = Path.Combine(Path.GetTempPath(), "postern-dovecot", Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, (UnixFileMode)0b111_101_101);
        var loopback = IPAddress.Loopback;
        var peer = new DovecotPeer(dir, new IPEndPoint(loopback, Ports.Free(loopback)));
        // Exactly the documented file, with the data directory this test uses.
        var documented = (await File.ReadAllTextAsync(DocumentedConfiguration)).Replace("/var/lib/postern", dataDirectory, StringComparison.Ordinal);
        await File.WriteAllTextAsync(Path.Combine(dir, "10-postern.conf"), documented);
        var config = Path.Combine(dir, "dovecot.conf");
        await File.WriteAllTextAsync(config, $$"""
            # A private instance for one test; what concerns Postern comes from 10-postern.conf.
            base_dir = {{dir}}/run
            state_dir = {{dir}}/state
            instance_name = postern-test-{{peer.Imap.Port}}
            log_path = {{peer.LogFile}}
            protocols = imap lmtp
            listen = 127.0.0.1
            ssl = no
            auth_verbose = yes
            service imap-login {
              inet_listener imap {
                address = 127.0.0.1
                port = {{peer.Imap.Port}}
              }
              inet_listener imaps {
                port = 0
              }
            }
            service lmtp {
              unix_listener lmtp {
                mode = 0666
              }
            }
            {{extra}}
            !include {{dir}}/10-postern.conf
            """);
        var psi = new ProcessStartInfo(DovecotCommand);
        foreach (var a in new[] { "-F", "-c", config })
        {
            psi.ArgumentList.Add(a);
        }
        try
        {
            peer._process = await PeerProcess.StartAsync(psi, "dovecot", [peer.Imap], _ => "\n" + peer.Log);
            var deadline = Environment.TickCount64 + 10_000;
            while (!File.Exists(peer.LmtpSocket))
            {
                Assert.True(Environment.TickCount64 < deadline, $"no LMTP socket {peer.LmtpSocket}: {peer.Log}");
                await Task.Delay(20);
            }
        }
        catch
        {
            await peer.DisposeAsync();
            throw;
        }
        return peer;
    }

    private static async Task Run(string program, params string[] args)
    {
        var r = await Peers.RunAsync(program, args);
        Assert.True(r.ExitCode == 0, $"{program} {string.Join(' ', args)}: {r.All}");
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
        {
            await _process.StopAsync();
        }
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
