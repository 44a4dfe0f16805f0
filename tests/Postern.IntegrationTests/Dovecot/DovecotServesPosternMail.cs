using System.Diagnostics;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Search;
using MailKit.Security;
using MimeKit;
using Postern.IntegrationTests.Cli;
using Postern.IntegrationTests.CrashSafety;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Queue;

namespace Postern.IntegrationTests.Dovecot;

/// <summary>
/// Issue 11 item 6: Debian's Dovecot, configured exactly as the README says
/// (contrib/dovecot/10-postern.conf), serves the mail a real `postern serve` delivers, running as the
/// system user postern as in production, to the accounts `postern user` manages: by Maildir and by
/// LMTP (Delivery.Lmtp), where Sieve and quotas apply and each recipient's reply decides for it alone.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class DovecotServesPosternMail : IAsyncLifetime
{
    private const string Alice = "alice@example.test";
    private const string Bob = "bob@example.test";
    private readonly string _folder = TestServer.NewDataDir();
    private string _data = "";
    private PosternCli? _cli;
    private DovecotPeer? _dovecot;
    private PosternProcess? _postern;

    public async Task InitializeAsync()
    {
        _data = await DovecotPeer.PrepareDataDirectoryAsync(_folder);
        _cli = PosternCli.WithConfig(_data);
    }

    public async Task DisposeAsync()
    {
        _postern?.Dispose();
        if (_dovecot is not null)
        {
            await _dovecot.DisposeAsync();
        }
        _cli?.Dispose();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AUserReadsOverImapWhatPosternDeliveredAndAFlagSurvivesLaterDeliveries(bool lmtp)
    {
        await AddUserAsync(Alice, "alice-password-1");
        await StartAsync(lmtp);
        await SendAsync("first message", Alice);
        using (var imap = await LoginAsync(Alice, "alice-password-1"))
        {
            var inbox = await WaitForMessagesAsync(imap, "INBOX", 1);
            var first = await inbox.GetMessageAsync(0);
            Assert.Equal("first message", first.Subject);
            Assert.Contains("sent by the Dovecot test", first.TextBody, StringComparison.Ordinal);
            await inbox.AddFlagsAsync(0, MessageFlags.Flagged | MessageFlags.Seen, true);
            await imap.DisconnectAsync(true);
        }
        await SendAsync("second message", Alice);
        using (var imap = await LoginAsync(Alice, "alice-password-1"))
        {
            var inbox = await WaitForMessagesAsync(imap, "INBOX", 2);
            var summaries = await inbox.FetchAsync(0, -1, MessageSummaryItems.Flags | MessageSummaryItems.Envelope);
            var first = summaries.Single(s => s.Envelope!.Subject == "first message");
            var second = summaries.Single(s => s.Envelope!.Subject == "second message");
            Assert.True(first.Flags!.Value.HasFlag(MessageFlags.Flagged), $"the flag set over IMAP is gone: {first.Flags}");
            Assert.False(second.Flags!.Value.HasFlag(MessageFlags.Flagged));
        }
        Assert.Contains(_postern!.Output.Split('\n'), l => l.Contains($"to={Alice} ", StringComparison.Ordinal)
            && l.Contains(lmtp ? "transport=lmtp" : "transport=local", StringComparison.Ordinal) && l.Contains("status=sent", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AChangedPasswordWorksAtOnceAndTheOldOneNoLonger()
    {
        await AddUserAsync(Alice, "old-password");
        await StartAsync(lmtp: false);
        using (var imap = await LoginAsync(Alice, "old-password"))
        {
            await imap.DisconnectAsync(true);
        }
        var before = FileOwners(_cli!.PasswdFile);
        var changed = await _cli.RunWithInputAsync("new-password\n", "user", "passwd", Alice, "--password-stdin");
        Assert.True(changed.ExitCode == 0, changed.ToString());
        Assert.Equal(before, FileOwners(_cli.PasswdFile));
        using (var imap = await LoginAsync(Alice, "new-password"))
        {
            await imap.DisconnectAsync(true);
        }
        using var refused = new ImapClient();
        await refused.ConnectAsync(_dovecot!.Imap.Address.ToString(), _dovecot.Imap.Port, SecureSocketOptions.None);
        await Assert.ThrowsAsync<AuthenticationException>(() => refused.AuthenticateAsync(Alice, "old-password"));
    }

    [Fact]
    public async Task ASieveRuleOfTheUserFilesAMessageIntoAFolder()
    {
        await AddUserAsync(Alice, "alice-password");
        // The user's own script, ~/.dovecot.sieve (home is the Maildir), owned by postern as Dovecot runs it.
        var home = Path.Combine(_data, "mail", "example.test", "alice");
        foreach (var d in new[] { Path.Combine(_data, "mail"), Path.Combine(_data, "mail", "example.test"), home })
        {
            await Run("install", "-d", "-o", "postern", "-g", "postern", "-m", "0700", d);
        }
        var script = Path.Combine(_folder, "rule.sieve");
        await File.WriteAllTextAsync(script, "require [\"fileinto\", \"mailbox\"];\nif header :contains \"subject\" \"invoice\" { fileinto :create \"Invoices\"; stop; }\n");
        await Run("install", "-o", "postern", "-g", "postern", "-m", "0600", script, Path.Combine(home, ".dovecot.sieve"));
        await StartAsync(lmtp: true);

        await SendAsync("invoice 42", Alice);
        await SendAsync("hello", Alice);
        using var imap = await LoginAsync(Alice, "alice-password");
        var invoices = await WaitForMessagesAsync(imap, "Invoices", 1);
        Assert.Equal("invoice 42", (await invoices.GetMessageAsync(0)).Subject);
        var inbox = await WaitForMessagesAsync(imap, "INBOX", 1);
        Assert.Equal("hello", (await inbox.GetMessageAsync(0)).Subject);
    }

    [Theory]
    [InlineData(false, "bounced", "552")]
    [InlineData(true, "deferred", "452")]
    public async Task AnOverQuotaRecipientGetsTheOutcomeOfDovecotsCodeAndTheOtherIsDelivered(bool tempfail, string status, string code)
    {
        await AddUserAsync(Alice, "alice-password");
        await AddUserAsync(Bob, "bob-password");
        // A tiny quota, one message: bob's first fills it.
        await StartAsync(lmtp: true, $$"""
            mail_plugins = $mail_plugins quota
            plugin {
              quota = count:User quota
              quota_vsizes = yes
              quota_rule = *:messages=1
            }
            # Dovecot's own switch: 452 4.2.2 (try again) instead of 552 5.2.2 for a full mailbox.
            quota_full_tempfail = {{(tempfail ? "yes" : "no")}}
            """);
        await SendAsync("fills the quota", Bob);
        await WaitForLineAsync(l => l.Contains($"to={Bob} ", StringComparison.Ordinal) && l.Contains("status=sent", StringComparison.Ordinal));

        await SendAsync("for both", Alice, Bob);
        var bob = await WaitForLineAsync(l => l.Contains($"to={Bob} ", StringComparison.Ordinal) && l.Contains($"status={status}", StringComparison.Ordinal));
        Assert.Contains("transport=lmtp", bob, StringComparison.Ordinal);
        Assert.Contains($"detail=\"{code} ", bob, StringComparison.Ordinal);
        Assert.Contains("uota", bob, StringComparison.Ordinal);
        using var imap = await LoginAsync(Alice, "alice-password");
        var inbox = await WaitForMessagesAsync(imap, "INBOX", 1);
        Assert.Equal("for both", (await inbox.GetMessageAsync(0)).Subject);
        if (!tempfail)
        {
            // The sender is told, with Dovecot's reply.
            await WaitForLineAsync(l => l.Contains("event=bounce_queued", StringComparison.Ordinal) && l.Contains("to=sender@remote.test", StringComparison.Ordinal));
            // remote.test does not exist: the report comes back to the postmaster, who has no
            // account here (Dovecot knows no such user), so it goes into its Maildir, not lost.
            await WaitForLineAsync(l => l.Contains("to=postmaster@example.test ", StringComparison.Ordinal) && l.Contains("transport=local", StringComparison.Ordinal)
                && l.Contains("status=sent", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task AnLmtpServerThatIsNotThereDefersNamingTheSetting()
    {
        await AddUserAsync(Alice, "alice-password");
        _postern = await PosternProcess.StartAsync(_data, TimeSpan.FromSeconds(30),
            new Dictionary<string, object> { ["Delivery"] = new { Lmtp = "unix:" + Path.Combine(_folder, "no-such-socket") } }, runAs: "postern");
        await SendAsync("nowhere to go", Alice);
        var line = await WaitForLineAsync(l => l.Contains($"to={Alice} ", StringComparison.Ordinal) && l.Contains("status=", StringComparison.Ordinal));
        Assert.Contains("status=deferred", line, StringComparison.Ordinal);
        Assert.Contains("Delivery.Lmtp", line, StringComparison.Ordinal);
        Assert.Single(Directory.GetFiles(Path.Combine(_data, "queue", "messages")));
    }

    private async Task AddUserAsync(string address, string password)
    {
        // As root, as an admin would; the file keeps postern:postern 0640 (Dovecot reads it by group).
        var added = await _cli!.RunWithInputAsync(password + "\n", "user", "add", address, "--password-stdin");
        Assert.True(added.ExitCode == 0, added.ToString());
        var owner = FileOwners(_cli.PasswdFile);
        Assert.Equal(("postern", "postern", "640"), owner);
    }

    private async Task StartAsync(bool lmtp, string dovecotExtra = "")
    {
        _dovecot = await DovecotPeer.StartAsync(_data, dovecotExtra);
        var extra = new Dictionary<string, object>();
        if (lmtp)
        {
            extra["Delivery"] = new { Lmtp = "unix:" + _dovecot.LmtpSocket };
        }
        _postern = await PosternProcess.StartAsync(_data, TimeSpan.FromSeconds(30), extra, runAs: "postern");
    }

    private async Task SendAsync(string subject, params string[] to)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@remote.test"));
        foreach (var t in to)
        {
            message.To.Add(MailboxAddress.Parse(t));
        }
        message.Subject = subject;
        message.Body = new TextPart("plain") { Text = "sent by the Dovecot test\r\n.a line with a leading dot\r\n" };
        using var smtp = new MailKit.Net.Smtp.SmtpClient();
        await smtp.ConnectAsync(_postern!.Host, _postern.Port, SecureSocketOptions.None);
        await smtp.SendAsync(message);
        await smtp.DisconnectAsync(true);
    }

    private async Task<ImapClient> LoginAsync(string user, string password)
    {
        var imap = new ImapClient();
        await imap.ConnectAsync(_dovecot!.Imap.Address.ToString(), _dovecot.Imap.Port, SecureSocketOptions.None);
        try
        {
            await imap.AuthenticateAsync(user, password);
        }
        catch (AuthenticationException e)
        {
            imap.Dispose();
            throw new Xunit.Sdk.XunitException($"IMAP login of {user} failed ({e.Message}); Dovecot's log:\n{_dovecot.Log}");
        }
        return imap;
    }

    /// <summary>Opens <paramref name="folder"/> again and again until it holds <paramref name="count"/> messages.</summary>
    private async Task<IMailFolder> WaitForMessagesAsync(ImapClient imap, string folder, int count)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            IMailFolder? box = null;
            try
            {
                box = folder == "INBOX" ? imap.Inbox : await imap.GetFolderAsync(folder);
                await box.OpenAsync(FolderAccess.ReadWrite);
                if (box.Count >= count)
                {
                    Assert.Equal(count, box.Count);
                    return box;
                }
                await box.CloseAsync();
            }
            catch (FolderNotFoundException) when (clock.Elapsed < TimeSpan.FromSeconds(20))
            {
            }
            if (clock.Elapsed > TimeSpan.FromSeconds(20))
            {
                throw new Xunit.Sdk.XunitException($"{folder} holds {box?.Count} messages, not {count}, after 20 s.\nPostern:\n{_postern!.Output}\nDovecot:\n{_dovecot!.Log}");
            }
            await Task.Delay(100);
        }
    }

    private async Task<string> WaitForLineAsync(Func<string, bool> match)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            var line = _postern!.Output.Split('\n').FirstOrDefault(match);
            if (line is not null)
            {
                return line;
            }
            await Task.Delay(50);
        }
        throw new Xunit.Sdk.XunitException($"no such log line within 20 s:\n{_postern!.Output}\nDovecot:\n{_dovecot?.Log}");
    }

    private static (string User, string Group, string Mode) FileOwners(string path)
    {
        var o = Server.Storage.FileStatus.Of(path)!.Value;
        return (Server.Storage.UnixUser.NameOf(o.Uid), Server.Storage.UnixUser.GroupNameOf(o.Gid), Convert.ToString((int)o.Mode, 8));
    }

    private static async Task Run(string program, params string[] args)
    {
        var r = await Peers.RunAsync(program, args);
        Assert.True(r.ExitCode == 0, $"{program} {string.Join(' ', args)}: {r.All}");
    }
}
