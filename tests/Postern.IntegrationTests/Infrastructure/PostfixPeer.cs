using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>
/// A private Postfix instance (Debian's, run as root) that receives mail for the tests: its own
/// configuration, queue and data directories under a temp folder, smtpd listening on one loopback
/// address and a free port only, STARTTLS offered with a self-signed certificate, the virtual
/// mailbox domain <see cref="Domain"/> delivered into Maildirs, unknown users refused (550 5.1.1),
/// and a check_recipient_access map the test rewrites with <see cref="SetRecipientAccessAsync"/>.
/// Nothing is shared with the system-wide Postfix or with other instances (bench/run.sh runs one
/// too), so several may run at once. A missing postfix fails the test: CI installs it.
/// </summary>
public sealed class PostfixPeer : IAsyncDisposable
{
    private const string PostfixCommand = "/usr/sbin/postfix";
    private const string PostmapCommand = "/usr/sbin/postmap";
    // The uid and gid the virtual delivery agent writes the Maildirs as (nobody: above virtual_minimum_uid).
    private const int MailboxUid = 65534;

    private readonly string _dir;

    private PostfixPeer(string dir, IPEndPoint endpoint, string domain)
    {
        _dir = dir;
        EndPoint = endpoint;
        Domain = domain;
    }

    public IPEndPoint EndPoint { get; }
    public string Domain { get; }
    public string Hostname => $"mx.{Domain}";
    private string ConfigDir => Path.Combine(_dir, "conf");
    private string AccessMap => Path.Combine(ConfigDir, "recipient_access");
    private string MailLog => Path.Combine(_dir, "maillog");

    /// <summary>Everything this instance has logged so far (its maillog_file).</summary>
    public string Log
    {
        get
        {
            try
            {
                using var stream = new FileStream(MailLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                using var reader = new StreamReader(stream);
                return reader.ReadToEnd();
            }
            catch (FileNotFoundException)
            {
                return "";
            }
        }
    }

    /// <summary>
    /// Starts an instance listening on <paramref name="address"/> (a loopback address) and a free
    /// port, with one Maildir mailbox per local part given (mail for any other user of the domain is
    /// refused).
    /// </summary>
    public static async Task<PostfixPeer> StartAsync(string address, string domain, params string[] mailboxes)
    {
        if (!File.Exists(PostfixCommand) || !File.Exists(PostmapCommand))
        {
            throw new Xunit.Sdk.XunitException($"Postfix is not installed ({PostfixCommand} missing); run ./test.sh, which installs it");
        }
        var ip = IPAddress.Parse(address);
        Assert.True(IPAddress.IsLoopback(ip), $"{address} is not a loopback address");
        var dir = Path.Combine(Path.GetTempPath(), "postern-postfix", Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dir);
        var peer = new PostfixPeer(dir, new IPEndPoint(ip, Ports.Free(ip)), domain);
        try
        {
            await peer.ConfigureAsync(mailboxes);
            await peer.StartAsync();
        }
        catch
        {
            await peer.DisposeAsync();
            throw;
        }
        return peer;
    }

    private async Task ConfigureAsync(string[] mailboxes)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("Postfix runs on Unix only");
        }
        Directory.CreateDirectory(ConfigDir);
        Directory.CreateDirectory(Path.Combine(_dir, "queue"));
        // virtual(8) creates each Maildir below the base as the mailbox uid, which must be able to write there.
        var mail = Directory.CreateDirectory(Path.Combine(_dir, "mail")).FullName;
        File.SetUnixFileMode(mail, (UnixFileMode)0b111_111_111);

        var cert = Path.Combine(ConfigDir, "cert.pem");
        var key = Path.Combine(ConfigDir, "key.pem");
        var openssl = await Peers.RunAsync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", $"/CN={Hostname}"], timeoutMs: 20_000);
        Assert.True(openssl.ExitCode == 0, "openssl could not make the certificate: " + openssl.All);

        var vmailbox = Path.Combine(ConfigDir, "vmailbox");
        File.WriteAllText(vmailbox, string.Concat(mailboxes.Select(m => $"{m}@{Domain} {Domain}/{m}/\n")));
        File.WriteAllText(AccessMap, "");
        File.WriteAllText(Path.Combine(ConfigDir, "main.cf"), $"""
            # Private Postfix instance for one Postern integration test.
            compatibility_level = 3.6
            queue_directory = {_dir}/queue
            data_directory = {_dir}/data
            mail_owner = postfix
            setgid_group = postdrop
            syslog_name = postfix-test
            maillog_file = {MailLog}
            maillog_file_prefixes = {_dir}
            myhostname = {Hostname}
            mydomain = {Domain}
            myorigin = {Domain}
            mydestination =
            # smtpd listens on the address given in master.cf; nothing else listens anywhere.
            inet_interfaces = loopback-only
            inet_protocols = ipv4
            mynetworks = 127.0.0.0/8
            alias_maps =
            alias_database =
            local_recipient_maps =
            # Headers arrive exactly as sent: no rewriting of header addresses for any client.
            local_header_rewrite_clients =
            virtual_mailbox_domains = {Domain}
            virtual_mailbox_base = {mail}
            virtual_mailbox_maps = hash:{vmailbox}
            virtual_uid_maps = static:{MailboxUid}
            virtual_gid_maps = static:{MailboxUid}
            smtpd_peername_lookup = no
            smtp_dns_support_level = disabled
            smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
            smtpd_recipient_restrictions = check_recipient_access hash:{AccessMap}
            smtpd_tls_security_level = may
            smtpd_tls_cert_file = {cert}
            smtpd_tls_key_file = {key}
            smtpd_tls_received_header = yes
            smtpd_tls_loglevel = 1
            smtp_tls_security_level = none
            biff = no
            append_dot_mydomain = no
            readme_directory = no
            smtpd_banner = $myhostname ESMTP

            """);
        // The stock services without chroot; smtpd only on the test's address and port, and each smtpd
        // serves one connection (max_use=1), so a rewritten access map applies from the next one on.
        File.WriteAllText(Path.Combine(ConfigDir, "master.cf"), $"""
            {EndPoint.Address}:{EndPoint.Port} inet n - n - - smtpd -o max_use=1
            pickup    unix  n       -       n       60      1       pickup
            cleanup   unix  n       -       n       -       0       cleanup
            qmgr      unix  n       -       n       300     1       qmgr
            tlsmgr    unix  -       -       n       1000?   1       tlsmgr
            rewrite   unix  -       -       n       -       -       trivial-rewrite
            bounce    unix  -       -       n       -       0       bounce
            defer     unix  -       -       n       -       0       bounce
            trace     unix  -       -       n       -       0       bounce
            verify    unix  -       -       n       -       1       verify
            flush     unix  n       -       n       1000?   0       flush
            proxymap  unix  -       -       n       -       -       proxymap
            showq     unix  n       -       n       -       -       showq
            error     unix  -       -       n       -       -       error
            retry     unix  -       -       n       -       -       error
            discard   unix  -       -       n       -       -       discard
            virtual   unix  -       n       n       -       -       virtual
            anvil     unix  -       -       n       -       1       anvil
            scache    unix  -       -       n       -       1       scache
            postlog   unix-dgram n  -       n       -       1       postlogd

            """);
        await PostmapAsync(vmailbox);
        await PostmapAsync(AccessMap);
    }

    private async Task StartAsync()
    {
        var start = await Peers.RunAsync(PostfixCommand, ["-c", ConfigDir, "start"], timeoutMs: 30_000);
        Assert.True(start.ExitCode == 0, $"postfix -c {ConfigDir} start failed: {start.All}\n{Log}");
        // Dispose finds the instance's processes this way; if it could not, it would leave them running.
        Assert.True(Processes().Count > 0, $"no process works in {_dir}/queue after postfix start");
        // master binds the listening socket before `postfix start` returns; wait for smtpd's banner
        // anyway, which proves that smtpd itself runs with this configuration.
        var deadline = Environment.TickCount64 + 10_000;
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                using var cts = new CancellationTokenSource(2_000);
                await client.ConnectAsync(EndPoint, cts.Token);
                using var reader = new StreamReader(client.GetStream(), Encoding.ASCII);
                var banner = await reader.ReadLineAsync(cts.Token);
                if (banner is not null && banner.StartsWith("220 ", StringComparison.Ordinal))
                {
                    await client.GetStream().WriteAsync("QUIT\r\n"u8.ToArray(), cts.Token);
                    return;
                }
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
            {
            }
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException($"Postfix does not answer on {EndPoint} within 10 s. Log:\n{Log}");
            }
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// Replaces the check_recipient_access map, e.g. ("later@pf.test", "450 4.2.0 try later"); no
    /// entries: every recipient passes again. Takes effect for the next SMTP connection.
    /// </summary>
    public async Task SetRecipientAccessAsync(params (string Address, string Action)[] entries)
    {
        File.WriteAllText(AccessMap, string.Concat(entries.Select(e => $"{e.Address} {e.Action}\n")));
        await PostmapAsync(AccessMap);
    }

    private async Task PostmapAsync(string file)
    {
        var run = await Peers.RunAsync(PostmapCommand, ["-c", ConfigDir, $"hash:{file}"], timeoutMs: 20_000);
        Assert.True(run.ExitCode == 0, $"postmap {file} failed: {run.All}");
    }

    /// <summary>Message files delivered to a mailbox's Maildir new/, oldest name first.</summary>
    public string[] Delivered(string localPart)
    {
        var dir = Path.Combine(_dir, "mail", Domain, localPart, "new");
        return Directory.Exists(dir) ? Directory.GetFiles(dir).Order(StringComparer.Ordinal).ToArray() : [];
    }

    /// <summary>Waits until a mailbox has at least <paramref name="count"/> messages; returns their contents.</summary>
    public async Task<byte[][]> WaitForDeliveryAsync(string localPart, int count = 1, int timeoutMs = 10_000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (true)
        {
            var files = Delivered(localPart);
            if (files.Length >= count)
            {
                return files.Select(File.ReadAllBytes).ToArray();
            }
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException($"{localPart}@{Domain} has {files.Length} of {count} messages after {timeoutMs} ms. Postfix log:\n{Log}");
            }
            await Task.Delay(20);
        }
    }

    /// <summary>Waits until a line of Postfix's log contains all the given fragments.</summary>
    public async Task<string> WaitForLogAsync(params string[] fragments)
    {
        var deadline = Environment.TickCount64 + 10_000;
        while (true)
        {
            var log = Log;
            var line = log.Split('\n').FirstOrDefault(l => fragments.All(f => l.Contains(f, StringComparison.Ordinal)));
            if (line is not null)
            {
                return line;
            }
            if (Environment.TickCount64 > deadline)
            {
                throw new TimeoutException($"no Postfix log line with {string.Join(" & ", fragments)}. Log:\n{log}");
            }
            await Task.Delay(20);
        }
    }


    /// <summary>
    /// The live processes of this instance: the master and its daemons all work in the queue
    /// directory. (Its pid file cannot be read from .NET while the master runs: the master holds a
    /// lock on it, and .NET's FileStream wants a shared one.) Zombies count as gone.
    /// </summary>
    private List<int> Processes()
    {
        var queue = Path.Combine(_dir, "queue");
        var found = new List<int>();
        foreach (var entry in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), System.Globalization.CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }
            try
            {
                if (new DirectoryInfo(Path.Combine(entry, "cwd")).LinkTarget != queue)
                {
                    continue;
                }
                // The state letter follows the command name in parentheses: "1234 (master) S ...".
                var stat = File.ReadAllText(Path.Combine(entry, "stat"));
                if (stat[stat.LastIndexOf(')')..] is not [')', ' ', 'Z' or 'X', ..])
                {
                    found.Add(pid);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Gone meanwhile, or not ours to look at.
            }
        }
        return found;
    }

    public async ValueTask DisposeAsync()
    {
        if (Processes().Count > 0)
        {
            try
            {
                await Peers.RunAsync(PostfixCommand, ["-c", ConfigDir, "stop"], timeoutMs: 15_000);
            }
            catch (TimeoutException)
            {
            }
            var deadline = Environment.TickCount64 + 5_000;
            while (Processes().Count > 0 && Environment.TickCount64 < deadline)
            {
                await Task.Delay(20);
            }
            // Whatever did not stop in time is killed, by pid: only this instance's processes.
            foreach (var pid in Processes())
            {
                try
                {
                    using var process = System.Diagnostics.Process.GetProcessById(pid);
                    process.Kill();
                }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
                {
                }
            }
        }
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
