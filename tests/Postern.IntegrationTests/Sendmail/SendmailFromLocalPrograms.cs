using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Sendmail;

/// <summary>
/// `postern sendmail` as local programs use it, run as unprivileged Unix users (issue 11 item 7): a
/// cron-style pipe, Debian's bsd-mailx, -f by an untrusted and a trusted user, -bs, mail dropped
/// while no server runs, and garbage in DATA/maildrop/ next to good mail.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SendmailFromLocalPrograms
{
    private const string Host = "mx.example.test";

    private static Task<TestServer> StartAsync(string? dataDir = null) =>
        dataDir is null ? TestServer.StartAsync(LocalUser.Configure) : TestServer.StartOnAsync(dataDir, LocalUser.Configure);

    private static string Text(byte[] b) => Encoding.UTF8.GetString(b);

    [Fact]
    public async Task CronStylePipeReachesTheMaildirFromTheCallingUser()
    {
        await using var server = await StartAsync();
        var config = LocalUser.WriteConfig(server);
        // As cron writes it: an unqualified To, LF line endings, no From, Date or Message-ID.
        var run = await LocalUser.SendmailAsync(LocalUser.Plain, config, "To: root\nSubject: Cron <pmsend@box> backup\n\nbackup done\n", "-t", "-i");
        Assert.True(run.ExitCode == 0, run.ToString());
        var mail = Text((await server.WaitForDeliveryAsync("alice@example.test"))[0]);
        Assert.StartsWith($"Return-Path: <{LocalUser.Plain}@{Host}>\r\n", mail);
        Assert.Contains($"To: root@{Host}\r\n", mail);
        Assert.Contains("Subject: Cron <pmsend@box> backup\r\n", mail);
        Assert.Contains($"From: {LocalUser.Plain}@{Host}\r\n", mail);
        Assert.Contains("\r\nDate: ", mail);
        Assert.Contains("\r\nMessage-ID: <", mail);
        Assert.Contains($"(Postern, from userid ", mail);
        Assert.Contains("\r\n\r\nbackup done\r\n", mail);
        var line = await server.WaitForLogAsync("event=pickup ", $"user={LocalUser.Plain}");
        Assert.Contains($"from={LocalUser.Plain}@{Host}", line);
        Assert.Contains("queue_id=", line);
    }

    [Fact]
    public async Task BsdMailxSendsThroughPosternSendmail()
    {
        await using var server = await StartAsync();
        var config = LocalUser.WriteConfig(server);
        var folder = Path.GetDirectoryName(server.DataDir)!;
        var wrapper = LocalUser.WriteSendmailWrapper(folder, config);
        // bsd-mailx runs the program named by its `sendmail` variable; MAILRC names the start-up file that sets it.
        var mailrc = Path.Combine(folder, $"mailrc-{Path.GetFileName(server.DataDir)}");
        File.WriteAllText(mailrc, $"set sendmail={wrapper}\n");
        File.SetUnixFileMode(mailrc, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead | UnixFileMode.GroupRead);
        var run = await LocalUser.AsUserAsync(LocalUser.Plain, "Disk /dev/sda1 is 91% full.\n", ["/usr/bin/bsd-mailx", "-s", "disk report", "alice@example.test"],
            new Dictionary<string, string> { ["MAILRC"] = mailrc });
        Assert.True(run.ExitCode == 0, run.ToString());
        var mail = Text((await server.WaitForDeliveryAsync("alice@example.test"))[0]);
        Assert.StartsWith($"Return-Path: <{LocalUser.Plain}@{Host}>\r\n", mail);
        Assert.Contains("Subject: disk report\r\n", mail);
        Assert.Contains("To: alice@example.test\r\n", mail);
        Assert.Contains("Disk /dev/sda1 is 91% full.\r\n", mail);
    }

    [Fact]
    public async Task UntrustedUserCannotGiveAnotherSender()
    {
        await using var server = await StartAsync();
        var config = LocalUser.WriteConfig(server);
        var run = await LocalUser.SendmailAsync(LocalUser.Plain, config, "Subject: as the boss\n\nhi\n", "-f", "boss@example.test", "bob@example.test");
        Assert.True(run.ExitCode == 77, run.ToString()); // EX_NOPERM
        Assert.Contains("may only send as", run.Err);
        // Its own plus-address is its own.
        run = await LocalUser.SendmailAsync(LocalUser.Plain, config, "Subject: tagged\n\nhi\n", $"-f{LocalUser.Plain}+cron@{Host}", "bob@example.test");
        Assert.True(run.ExitCode == 0, run.ToString());
        var mail = Text((await server.WaitForDeliveryAsync("bob@example.test"))[0]);
        Assert.StartsWith($"Return-Path: <{LocalUser.Plain}+cron@{Host}>\r\n", mail);
    }

    [Fact]
    public async Task ServerRefusesASenderTheClientWasNotAskedAbout()
    {
        // A user who writes the maildrop file without `postern sendmail` is judged all the same: the
        // message comes back to the user as a bounce and reaches nobody else.
        await using var server = await StartAsync();
        var name = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var file = Path.Combine(server.DataDir, Maildrop.DirectoryName, name);
        var content = "POSTERN-MAILDROP1 {\"Version\":1,\"From\":\"boss@example.test\",\"Recipients\":[\"bob@example.test\"]}\nSubject: forged\n\npay the invoice\n";
        var run = await LocalUser.AsUserAsync(LocalUser.Plain, content, ["/bin/sh", "-c", $"cat > {Path.Combine(Path.GetDirectoryName(file)!, "tmp." + name)} && mv {Path.Combine(Path.GetDirectoryName(file)!, "tmp." + name)} {file}"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var refused = await server.WaitForLogAsync("event=pickup_refused", $"user={LocalUser.Plain}");
        Assert.Contains("5.7.1", refused);
        var bounce = Text((await server.WaitForDeliveryAsync("alice@example.test"))[0]);
        Assert.StartsWith("Return-Path: <>\r\n", bounce);
        Assert.Contains("Undelivered Mail Returned to Sender", bounce);
        Assert.Contains("is not yours", bounce);
        await server.WaitForLogAsync("event=removed");
        Assert.Empty(server.Delivered("bob@example.test"));
        Assert.False(File.Exists(file));
    }

    [Fact]
    public async Task ASenderWithALineBreakInAHandWrittenFileInjectsNothingAndStopsNothing()
    {
        // Found in review: a CR LF in the file's sender became header lines above the server's own
        // Received field, and a sender MimeKit could not parse stopped the pickup for everybody.
        await using var server = await StartAsync();
        var dir = Path.Combine(server.DataDir, Maildrop.DirectoryName);
        var name = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var hostile = "POSTERN-MAILDROP1 {\"Version\":1,\"From\":\"" + LocalUser.Plain + "+x>\\r\\nX-Injected: yes\\r\\nDelivered-To: <@" + Host + "\",\"Recipients\":[\"bob@example.test\"]}\nSubject: hostile\n\nno From field here\n";
        var run = await LocalUser.AsUserAsync(LocalUser.Plain, hostile, ["/bin/sh", "-c", $"cat > {Path.Combine(dir, "tmp." + name)} && mv {Path.Combine(dir, "tmp." + name)} {Path.Combine(dir, name)}"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var refused = await server.WaitForLogAsync("event=pickup_refused", $"user={LocalUser.Plain}");
        Assert.Contains("5.1.7", refused);
        var bounce = Text((await server.WaitForDeliveryAsync("alice@example.test"))[0]);
        Assert.Contains("is not a valid address", bounce);
        Assert.DoesNotContain("\r\nX-Injected: yes", bounce);
        Assert.Empty(server.Delivered("bob@example.test"));

        // The pickup goes on: the next message of a well-behaved program arrives.
        var config = LocalUser.WriteConfig(server);
        var next = await LocalUser.SendmailAsync(LocalUser.Plain, config, "Subject: after\n\nfine\n", "bob@example.test");
        Assert.True(next.ExitCode == 0, next.ToString());
        var mail = Text((await server.WaitForDeliveryAsync("bob@example.test"))[0]);
        Assert.Contains("Subject: after\r\n", mail);
        Assert.DoesNotContain("X-Injected", mail);
    }

    [Fact]
    public async Task TrustedUserMayGiveAnySender()
    {
        await using var server = await StartAsync();
        var config = LocalUser.WriteConfig(server);
        var run = await LocalUser.SendmailAsync(LocalUser.Trusted, config, "Subject: from the app\n\nhi\n", "-f", "noreply@example.test", "-F", "Web Shop", "alice@example.test");
        Assert.True(run.ExitCode == 0, run.ToString());
        var mail = Text((await server.WaitForDeliveryAsync("alice@example.test"))[0]);
        Assert.StartsWith("Return-Path: <noreply@example.test>\r\n", mail);
        Assert.Contains("From: Web Shop <noreply@example.test>\r\n", mail);
    }

    [Fact]
    public async Task MailDroppedWhileNoServerRunsIsDeliveredAtTheNextStart()
    {
        var server = await StartAsync();
        server.KeepData = true;
        var dataDir = server.DataDir;
        var config = LocalUser.WriteConfig(server);
        await server.DisposeAsync();
        var run = await LocalUser.SendmailAsync(LocalUser.Plain, config, "Subject: while down\n\nqueued\n.\nnot part of it\n", "alice@example.test");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Single(Directory.GetFiles(Path.Combine(dataDir, Maildrop.DirectoryName)));
        await using var again = await StartAsync(dataDir);
        var mail = Text((await again.WaitForDeliveryAsync("alice@example.test"))[0]);
        Assert.Contains("Subject: while down\r\n", mail);
        // Without -i a lone dot ends the message (sendmail(8)).
        Assert.EndsWith("\r\n\r\nqueued\r\n", mail);
        Assert.Empty(Directory.GetFiles(Path.Combine(dataDir, Maildrop.DirectoryName)));
    }

    [Fact]
    public async Task GarbageInTheMaildropIsMovedAsideWhileGoodMailFlows()
    {
        await using var server = await StartAsync();
        var config = LocalUser.WriteConfig(server);
        var drop = Path.Combine(server.DataDir, Maildrop.DirectoryName);
        var garbage = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var link = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var run = await LocalUser.AsUserAsync(LocalUser.Plain, "", ["/bin/sh", "-c", $"head -c 3000 /dev/urandom > {drop}/{garbage}; ln -s {server.DataDir}/passwd {drop}/{link}"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        run = await LocalUser.SendmailAsync(LocalUser.Plain, config, "Subject: good one\n\nfine\n", "alice@example.test");
        Assert.True(run.ExitCode == 0, run.ToString());
        var mail = Text((await server.WaitForDeliveryAsync("alice@example.test"))[0]);
        Assert.Contains("Subject: good one\r\n", mail);
        var bad = await server.WaitForLogAsync("event=pickup_bad_file", $"file={garbage}");
        Assert.Contains($"user={LocalUser.Plain}", bad);
        Assert.Contains("not a maildrop file", bad);
        Assert.Contains("a symbolic link", await server.WaitForLogAsync("event=pickup_bad_file", $"file={link}"));
        Assert.True(File.Exists(Path.Combine(server.Server.Spool.CorruptDir, "maildrop." + garbage)));
        Assert.Empty(Directory.GetFiles(drop));
    }

    [Fact]
    public async Task SmtpDialogueOnStandardInput()
    {
        await using var server = await StartAsync();
        var config = LocalUser.WriteConfig(server);
        var dialogue = $"EHLO app\r\nMAIL FROM:<{LocalUser.Plain}@{Host}>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: over -bs\r\n\r\n..starts with a dot\r\n.\r\n"
            + "MAIL FROM:<boss@example.test>\r\nQUIT\r\n";
        var run = await LocalUser.SendmailAsync(LocalUser.Plain, config, dialogue, "-bs");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.StartsWith("220 ", run.Out);
        Assert.Contains("\r\n354 ", run.Out);
        Assert.Contains("\r\n553 5.7.1 ", run.Out);
        Assert.EndsWith("221 2.0.0 Bye\r\n", run.Out);
        var mail = Text((await server.WaitForDeliveryAsync("alice@example.test"))[0]);
        Assert.Contains("Subject: over -bs\r\n", mail);
        Assert.Contains("\r\n\r\n.starts with a dot\r\n", mail);
    }

    [Fact]
    public async Task UsageErrorsAreSysexitsCodes()
    {
        await using var server = await StartAsync();
        var config = LocalUser.WriteConfig(server);
        var run = await LocalUser.SendmailAsync(LocalUser.Plain, config, "x\n");
        Assert.True(run.ExitCode == 64, run.ToString()); // EX_USAGE: no recipients
        run = await LocalUser.SendmailAsync(LocalUser.Plain, config, "x\n", "-Z", "alice@example.test");
        Assert.True(run.ExitCode == 64, run.ToString());
        run = await LocalUser.SendmailAsync(LocalUser.Plain, config, "x\n", "not an address@@");
        Assert.True(run.ExitCode == 67, run.ToString()); // EX_NOUSER
        // Options callers pass and Postfix ignores are accepted.
        run = await LocalUser.SendmailAsync(LocalUser.Plain, config, "Subject: ignored options\n\nok\n", "-odi", "-oem", "-oi", "-B", "8BITMIME", "-N", "never", "-V", "envid", "-om", "alice@example.test");
        Assert.True(run.ExitCode == 0, run.ToString());
        await server.WaitForDeliveryAsync("alice@example.test");
    }
}
