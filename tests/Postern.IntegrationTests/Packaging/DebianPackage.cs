using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Packaging;

/// <summary>
/// The Debian package, as an admin meets it: packaging/build-deb.sh builds it, lintian finds no
/// error in it, `dpkg -i` installs it (the user postern, /var/lib/postern, the conffile, the unit,
/// the sendmail alternative), the packaged binary serves mail as the user postern, and
/// `dpkg --purge` takes it all away again. The package is built once per test run (the fixture).
/// </summary>
[Collection(SystemWide.Name)]
public sealed class DebianPackage(DebianPackage.Build build) : IClassFixture<DebianPackage.Build>
{
    /// <summary>Dropped into /var/lib/postern by this test, so that a later run knows a leftover is its own.</summary>
    private const string Marker = ".postern-package-test";

    [Fact]
    public async Task LintianReportsNoErrors()
    {
        var deb = build.Deb();
        var lintian = await Run("lintian", ["--pedantic", "--no-tag-display-limit", deb], timeout: TimeSpan.FromMinutes(5));
        var errors = lintian.All.Split('\n').Where(l => l.StartsWith("E: ", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, $"lintian found errors (packaging/README.md says what is overridden and why):\n{lintian.All}");
        // And lintian's own verdict: it exits 1 when it finds an error.
        Assert.True(lintian.ExitCode == 0, $"lintian exited {lintian.ExitCode}:\n{lintian.All}");
    }

    [Fact]
    public async Task InstallsServesMailAsItsUserAndPurgesCleanly()
    {
        var deb = build.Deb();
        await RemoveOwnLeftoverAsync();
        var folder = Directory.CreateTempSubdirectory("postern-deb-test-");
        Process? server = null;
        try
        {
            var install = await Dpkg("-i", deb);
            Assert.True(install.ExitCode == 0, $"dpkg -i: exit {install.ExitCode}\n{install.All}");
            // The example configuration cannot start: postinst says so and names what to edit.
            Assert.Contains("not started", install.All, StringComparison.Ordinal);
            Assert.Contains("Tls.CertificatePath", install.All, StringComparison.Ordinal);

            // The user and group postern, a system account that cannot log in.
            var passwd = (await Run("getent", ["passwd", "postern"])).Stdout.Trim().Split(':');
            Assert.True(passwd.Length == 7, $"no user postern after dpkg -i: {string.Join(':', passwd)}");
            Assert.True(int.Parse(passwd[2], System.Globalization.CultureInfo.InvariantCulture) < 1000, $"postern is not a system user: uid {passwd[2]}");
            Assert.Equal("/var/lib/postern", passwd[5]);
            Assert.Equal("/usr/sbin/nologin", passwd[6]);
            Assert.Equal(0, (await Run("getent", ["group", "postern"])).ExitCode);
            File.WriteAllText($"/var/lib/postern/{Marker}", "");

            // DATA: owned by postern, 0711 (others may pass through to a known name, never list it).
            var stat = (await Run("stat", ["-c", "%U:%G %a", "/var/lib/postern"])).Stdout.Trim();
            Assert.Equal("postern:postern 711", stat);

            // The conffile, no open relay, and unusable until edited.
            var conffiles = (await Run("dpkg-query", ["-W", "-f=${Conffiles}", "postern"])).Stdout;
            Assert.Contains("/etc/postern/postern.json", conffiles, StringComparison.Ordinal);
            AssertNoOpenRelay("/etc/postern/postern.json");
            var check = await Run("/usr/bin/postern", ["config", "check", "--config", "/etc/postern/postern.json"]);
            Assert.True(check.ExitCode == 2, $"the example configuration passes the check, so the service would start with it:\n{check.All}");
            foreach (var key in new[] { "Hostname", "Domains[0]", "Tls.CertificatePath", "Tls.KeyPath" })
            {
                Assert.Contains(key + ":", check.All, StringComparison.Ordinal);
            }

            // The unit: systemd accepts it; it checks the configuration first, reloads by SIGHUP, runs as postern.
            const string unitFile = "/lib/systemd/system/postern.service";
            var verify = await Run("systemd-analyze", ["verify", unitFile]);
            Assert.True(verify.ExitCode == 0 && verify.Stderr.Trim().Length == 0, $"systemd-analyze verify: exit {verify.ExitCode}\n{verify.All}");
            var unit = File.ReadAllText(unitFile);
            Assert.Contains("ExecStartPre=/usr/bin/postern config check --config /etc/postern/postern.json", unit, StringComparison.Ordinal);
            Assert.Contains("ExecReload=/bin/kill -HUP $MAINPID", unit, StringComparison.Ordinal);
            Assert.Contains("User=postern", unit, StringComparison.Ordinal);
            Assert.Contains("AmbientCapabilities=CAP_NET_BIND_SERVICE", unit, StringComparison.Ordinal);
            Assert.True(File.Exists("/etc/systemd/system/multi-user.target.wants/postern.service"), "postinst did not enable the service");

            // /usr/sbin/sendmail: the alternative is registered and points at the wrapper (where another
            // MTA's package owns a real /usr/sbin/sendmail, as Postfix's does, it stays that one).
            var alternatives = await Run("update-alternatives", ["--query", "sendmail"]);
            Assert.Contains("Alternative: /usr/lib/postern/sendmail", alternatives.Stdout, StringComparison.Ordinal);
            Assert.Contains("exec /usr/bin/postern sendmail \"$@\"", File.ReadAllText("/usr/lib/postern/sendmail"), StringComparison.Ordinal);
            var owner = await Run("dpkg-query", ["-S", "/usr/sbin/sendmail"]);
            if (owner.ExitCode != 0)
            {
                Assert.Equal("/usr/lib/postern/sendmail", new FileInfo("/usr/sbin/sendmail").ResolveLinkTarget(returnFinalTarget: true)?.FullName);
            }

            // The packaged binary serves mail as postern, from a test configuration on a free loopback port.
            var host = IPAddress.Parse("127.0.6.1");
            var port = Ports.Free(host);
            var config = Path.Combine(folder.FullName, "postern.json");
            File.WriteAllText(config, JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["Hostname"] = "mail.example.test",
                ["DataDirectory"] = "/var/lib/postern",
                ["Domains"] = new[] { "example.test" },
                ["Listeners"] = new[] { new { Name = "mx", Endpoint = $"{host}:{port}", Role = "mx" } },
                ["Tls"] = new { Generate = true },
                ["Triage"] = new { Enabled = false },
                ["MailAuth"] = new { Enabled = false },
            }));
            // The user postern reads the file from its folder (a temp folder is 0700 root).
            Assert.Equal(0, (await Run("chmod", ["0755", folder.FullName])).ExitCode);
            Assert.Equal(0, (await Run("chmod", ["0644", config])).ExitCode);
            // The account, made with the packaged CLI as postern (argon2id through the libsodium beside it).
            var add = await Run("setpriv", ["--reuid=postern", "--regid=postern", "--init-groups", "/usr/bin/postern", "user", "add", "admin@example.test",
                "--password-stdin", "--config", config], stdin: "a long enough password\n");
            Assert.True(add.ExitCode == 0, $"postern user add: {add.All}");
            var output = new StringBuilder();
            server = StartAsPostern(["/usr/bin/postern", "serve", "--config", config], output);
            await WaitFor(() => Ports.IsListening(new IPEndPoint(host, port)), TimeSpan.FromSeconds(60),
                () => server.HasExited ? $"postern serve exited with {server.ExitCode}:\n{Text(output)}" : $"postern serve does not listen on {host}:{port}:\n{Text(output)}");
            var user = (await Run("ps", ["-o", "user=", "-p", server.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])).Stdout.Trim();
            Assert.Equal("postern", user);

            var message = new MimeMessage();
            message.From.Add(MailboxAddress.Parse("someone@elsewhere.example"));
            message.To.Add(MailboxAddress.Parse("admin@example.test"));
            message.Subject = "through the package";
            message.Body = new TextPart("plain") { Text = "Installed with dpkg -i." };
            using (var client = new SmtpClient())
            {
                client.LocalDomain = "client.example";
                await client.ConnectAsync(host.ToString(), port, SecureSocketOptions.None);
                var reply = await client.SendAsync(message);
                Assert.StartsWith("2.0.0", reply, StringComparison.Ordinal);
                await client.DisconnectAsync(quit: true);
            }
            var maildir = "/var/lib/postern/mail/example.test/admin/new";
            await WaitFor(() => Directory.Exists(maildir) && Directory.EnumerateFiles(maildir).Any(), TimeSpan.FromSeconds(30),
                () => $"nothing arrived in {maildir}:\n{Text(output)}");
            var delivered = Directory.EnumerateFiles(maildir).Single();
            Assert.Contains("Subject: through the package", File.ReadAllText(delivered), StringComparison.Ordinal);
            Assert.Equal("postern", (await Run("stat", ["-c", "%U", delivered])).Stdout.Trim());

            // The sendmail wrapper (what /usr/sbin/sendmail points at) hands a message from a local program over.
            var sendmail = await Run("/usr/lib/postern/sendmail", ["-i", "--config", config, "admin@example.test"],
                stdin: "Subject: through the sendmail wrapper\n\nFrom cron.\n");
            Assert.True(sendmail.ExitCode == 0, $"/usr/lib/postern/sendmail: exit {sendmail.ExitCode}\n{sendmail.All}");
            await WaitFor(() => Directory.EnumerateFiles(maildir).Count() == 2, TimeSpan.FromSeconds(30),
                () => $"the message given to /usr/lib/postern/sendmail did not arrive in {maildir}:\n{Text(output)}");
            Assert.Contains(Directory.EnumerateFiles(maildir).Select(File.ReadAllText), m => m.Contains("Subject: through the sendmail wrapper", StringComparison.Ordinal));

            // SIGTERM drains and ends it.
            Assert.Equal(0, (await Run("kill", ["-TERM", server.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])).ExitCode);
            using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            {
                await server.WaitForExitAsync(stop.Token);
            }
            Assert.True(server.ExitCode == 0, $"postern serve exited {server.ExitCode} on SIGTERM:\n{Text(output)}");
            Assert.Contains("event=stopped", Text(output), StringComparison.Ordinal);

            // Purge: the package's files, its configuration and its data go; the user stays (policy §9.2.2).
            var purge = await Dpkg("--purge", "postern");
            Assert.True(purge.ExitCode == 0, $"dpkg --purge: exit {purge.ExitCode}\n{purge.All}");
            foreach (var path in new[] { "/var/lib/postern", "/etc/postern", "/usr/lib/postern", "/usr/bin/postern", unitFile, "/usr/share/doc/postern" })
            {
                Assert.False(Path.Exists(path), $"{path} is still there after dpkg --purge");
            }
            Assert.False(File.Exists("/etc/systemd/system/multi-user.target.wants/postern.service"), "the service is still enabled after dpkg --purge");
            var after = await Run("update-alternatives", ["--query", "sendmail"]);
            Assert.DoesNotContain("/usr/lib/postern/sendmail", after.All, StringComparison.Ordinal);
            Assert.NotEqual("install ok installed", (await Run("dpkg-query", ["-W", "-f=${Status}", "postern"])).Stdout.Trim());
            Assert.Equal(0, (await Run("getent", ["passwd", "postern"])).ExitCode);
        }
        finally
        {
            if (server is { HasExited: false })
            {
                server.Kill(entireProcessTree: true);
                await server.WaitForExitAsync();
            }
            server?.Dispose();
            if ((await Run("dpkg-query", ["-W", "-f=${Status}", "postern"])).Stdout.Contains("installed", StringComparison.Ordinal)
                || Directory.Exists("/var/lib/postern"))
            {
                await Dpkg("--purge", "postern");
            }
            folder.Delete(recursive: true);
        }
    }

    /// <summary>The example configuration trusts no network beyond this machine itself.</summary>
    private static void AssertNoOpenRelay(string file)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(file), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        if (!json.RootElement.TryGetProperty("Relay", out var relay) || !relay.TryGetProperty("TrustedNetworks", out var networks))
        {
            return;
        }
        foreach (var network in networks.EnumerateArray().Select(n => IPNetwork.Parse(n.GetString()!)))
        {
            Assert.True(IPAddress.IsLoopback(network.BaseAddress) && network.PrefixLength >= (network.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 8 : 128),
                $"{file} trusts {network}, which is more than this machine");
        }
    }

    /// <summary>
    /// A package left installed by an earlier run of this test that was killed goes first; a postern
    /// installed by anyone else is left alone (purging it would delete its mail) and fails the test.
    /// </summary>
    private static async Task RemoveOwnLeftoverAsync()
    {
        var status = (await Run("dpkg-query", ["-W", "-f=${Status}", "postern"])).Stdout;
        if (!status.Contains("installed", StringComparison.Ordinal) && !Directory.Exists("/var/lib/postern"))
        {
            return;
        }
        Assert.True(File.Exists($"/var/lib/postern/{Marker}"),
            "a postern package (or /var/lib/postern) is on this machine already, not installed by this test, which installs and purges it: remove it first (dpkg --purge postern)");
        var purge = await Dpkg("--purge", "postern");
        Assert.True(purge.ExitCode == 0, $"dpkg --purge of the leftover: {purge.All}");
        if (Directory.Exists("/var/lib/postern"))
        {
            Directory.Delete("/var/lib/postern", recursive: true);
        }
    }

    /// <summary>dpkg, waiting while another dpkg or apt holds the lock (other work on this machine may install packages).</summary>
    private static async Task<Result> Dpkg(params string[] args)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(5);
        while (true)
        {
            var result = await Run("dpkg", args, timeout: TimeSpan.FromMinutes(5), environment: new() { ["DEBIAN_FRONTEND"] = "noninteractive" });
            if (result.ExitCode == 0 || !result.All.Contains("lock", StringComparison.OrdinalIgnoreCase) || DateTime.UtcNow > deadline)
            {
                return result;
            }
            await Task.Delay(1000);
        }
    }

    private static Process StartAsPostern(string[] command, StringBuilder output)
    {
        var psi = new ProcessStartInfo("setpriv") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = "/" };
        foreach (var a in (string[])["--reuid=postern", "--regid=postern", "--init-groups", .. command])
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("POSTERN_", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            psi.Environment.Remove(key);
        }
        var process = Process.Start(psi)!;
        void Keep(string? line)
        {
            if (line is not null)
            {
                lock (output)
                {
                    output.Append(line).Append('\n');
                }
            }
        }
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static string Text(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    private static async Task WaitFor(Func<bool> condition, TimeSpan timeout, Func<string> why)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, why());
            await Task.Delay(50);
        }
    }

    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string All => Stdout + Stderr;
    }

    /// <summary>Runs a program to its end (killed past <paramref name="timeout"/>); a missing one fails the test.</summary>
    internal static async Task<Result> Run(string program, string[] args, TimeSpan? timeout = null, Dictionary<string, string>? environment = null, string? stdin = null)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        foreach (var (key, value) in environment ?? [])
        {
            psi.Environment[key] = value;
        }
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new Xunit.Sdk.XunitException($"{program} is not installed ({e.Message}); ./test.sh installs it");
        }
        using (p)
        {
            if (stdin is not null)
            {
                await p.StandardInput.WriteAsync(stdin);
            }
            p.StandardInput.Close();
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(1));
            try
            {
                await p.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in {timeout}: {await stdout}{await stderr}");
            }
            return new Result(p.ExitCode, await stdout, await stderr);
        }
    }

    /// <summary>packaging/build-deb.sh, run once for the test class, into a folder of its own.</summary>
    public sealed class Build : IAsyncLifetime
    {
        private readonly DirectoryInfo _out = Directory.CreateTempSubdirectory("postern-deb-");
        private string? _deb;
        private string _failure = "";

        /// <summary>The built package; fails the test with the build's output when the build failed.</summary>
        public string Deb() => _deb ?? throw new Xunit.Sdk.XunitException($"packaging/build-deb.sh failed:\n{_failure}");

        public async Task InitializeAsync()
        {
            var script = Path.Combine(RepositoryRoot(), "packaging", "build-deb.sh");
            // A publish of its own takes minutes on a loaded machine: the bound is generous, not endless.
            var result = await Run("bash", [script], timeout: TimeSpan.FromMinutes(20), environment: new() { ["POSTERN_DEB_DIR"] = _out.FullName });
            var printed = result.Stdout.Trim().Split('\n').LastOrDefault() ?? "";
            if (result.ExitCode == 0 && File.Exists(printed) && Path.GetFileName(printed).StartsWith("postern_", StringComparison.Ordinal)
                && printed.EndsWith("_amd64.deb", StringComparison.Ordinal))
            {
                _deb = printed;
            }
            else
            {
                _failure = $"exit {result.ExitCode}\n{result.All}";
            }
        }

        public Task DisposeAsync()
        {
            _out.Delete(recursive: true);
            return Task.CompletedTask;
        }

        private static string RepositoryRoot()
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Postern.slnx")) && File.Exists(Path.Combine(dir.FullName, "packaging", "build-deb.sh")))
                {
                    return dir.FullName;
                }
            }
            throw new InvalidOperationException($"no Postern.slnx with packaging/build-deb.sh above {AppContext.BaseDirectory}");
        }
    }
}

/// <summary>
/// Tests that change the machine as a whole (a package installed: /etc/postern/postern.json, which
/// every verb without --config reads, the postern user, /usr/sbin/sendmail) run alone, after every
/// other test, never beside them.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SystemWide
{
    public const string Name = "system-wide";
}
