using System.Text;
using Microsoft.Extensions.Time.Testing;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;

namespace Postern.IntegrationTests.Delivery;

/// <summary>
/// Relay.Smarthost: all remote mail goes through a provider's submission server with TLS and AUTH.
/// The provider is a second Postern on 127.0.0.51 that requires AUTH on its submission (STARTTLS,
/// as on 587) and submissions (implicit TLS, as on 465) listeners; it takes far.test mail for
/// alice; like a real provider it lets bob send only as bob. The sending server has no working DNS
/// at all: a smarthost needs no MX lookup.
/// </summary>
public sealed class SmarthostRelay
{
    private static Task<TestServer> ProviderAsync() => TestServer.StartAsync(o =>
    {
        o.Hostname = "smtp.provider.test";
        o.Domains = ["example.test", "far.test"];
        o.Aliases["carol@far.test"] = ["alice@example.test"];
        o.Listeners =
        [
            new ListenerOptions { Name = "mx", Endpoint = "127.0.0.51:0", Role = ListenerRole.Mx },
            new ListenerOptions { Name = "submission", Endpoint = "127.0.0.51:0", Role = ListenerRole.Submission },
            new ListenerOptions { Name = "submissions", Endpoint = "127.0.0.51:0", Role = ListenerRole.Submissions },
        ];
    });

    private static string PasswordFile(string password)
    {
        var path = Path.Combine(TestServer.NewDataDir(), "smarthost.pw");
        File.WriteAllText(path, password + "\n");
        return path;
    }

    private static Task<TestServer> HomeAsync(int port, string tls, string passwordFile, bool verify = false, TimeProvider? time = null) =>
        TestServer.StartAsync(o =>
        {
            o.Relay.TrustedNetworks = ["127.0.0.0/8"];
            o.Relay.Smarthost = new SmarthostOptions
            {
                Host = "127.0.0.51",
                Port = port,
                Tls = tls,
                Username = "bob@example.test",
                PasswordFile = passwordFile,
                VerifyCertificate = verify,
            };
        }, time: time);

    private static async Task<string> RelayAsync(TestServer home, string subject)
    {
        await using var c = await RawSmtp.OpenAsync(home.MxPort);
        await c.CommandAsync("MAIL FROM:<bob@example.test>", 250);
        await c.CommandAsync("RCPT TO:<carol@far.test>", 250);
        await c.CommandAsync("DATA", 354);
        var reply = await c.CommandAsync($"From: bob@example.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@origin.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nthrough the smarthost\r\n.", 250);
        return reply.Split(' ')[^1];
    }

    private static int Count(TestServer s, params string[] fragments) =>
        s.LogLines.Count(l => fragments.All(f => l.Contains(f, StringComparison.Ordinal)));

    [Fact]
    public async Task SubmissionWithStartTlsAndAuthCarriesSeveralMessagesOverOneConnection()
    {
        await using var provider = await ProviderAsync();
        await using var home = await HomeAsync(provider.SubmissionPort, "starttls", PasswordFile(TestServer.BobPassword));
        for (var i = 1; i <= 3; i++)
        {
            var id = await RelayAsync(home, $"smarthost-{i}");
            await provider.WaitForDeliveryAsync("alice@example.test", i);
            await home.WaitForLogAsync("event=delivery", $"queue_id={id}", "transport=smarthost", "relay=127.0.0.51", "relay_ip=127.0.0.51",
                $"relay_port={provider.SubmissionPort}", "tls=TLSv1.3", "status=sent");
        }
        var arrived = Encoding.UTF8.GetString((await provider.WaitForDeliveryAsync("alice@example.test", 3))[0]);
        Assert.Contains("through the smarthost", arrived);
        Assert.Contains("with ESMTPSA id", arrived); // TLS and AUTH, in the provider's own Received header
        await provider.WaitForLogAsync("event=auth_ok", "user=bob@example.test");
        // Three messages, one after the other: one connection, one AUTH (the connection was kept).
        Assert.Equal(1, Count(provider, "event=connect", "listener=submission"));
        Assert.Equal(1, Count(provider, "event=auth_ok"));
        Assert.DoesNotContain(TestServer.BobPassword, home.Logs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ImplicitTlsAsOn465()
    {
        await using var provider = await ProviderAsync();
        await using var home = await HomeAsync(provider.SubmissionsPort, "implicit", PasswordFile(TestServer.BobPassword));
        var id = await RelayAsync(home, "implicit-tls");
        await provider.WaitForDeliveryAsync("alice@example.test");
        await home.WaitForLogAsync("event=delivery", $"queue_id={id}", "transport=smarthost", $"relay_port={provider.SubmissionsPort}", "tls=TLSv1.3", "status=sent");
        await provider.WaitForLogAsync("event=auth_ok", "user=bob@example.test");
    }

    [Fact]
    public async Task WrongPasswordDefersWithAClearReasonAndACorrectedFileNeedsNoRestart()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var provider = await ProviderAsync();
        var passwordFile = PasswordFile("not-the-password");
        await using var home = await HomeAsync(provider.SubmissionPort, "starttls", passwordFile, time: time);
        var id = await RelayAsync(home, "wrong-password");
        var line = await home.WaitForLogAsync("event=delivery", $"queue_id={id}", "status=deferred");
        Assert.Contains("refused the credentials of user 'bob@example.test'", line);
        Assert.Contains("535", line);
        Assert.Contains("tls=TLSv1.3", line); // refused after STARTTLS, as the log says
        Assert.Contains("Relay.Smarthost.PasswordFile", line);
        await provider.WaitForLogAsync("event=auth_failed", "user=bob@example.test");
        Assert.DoesNotContain("not-the-password", home.Logs, StringComparison.Ordinal);
        Assert.Empty(provider.Delivered("alice@example.test"));

        // The admin fixes the file; the next attempt (on the injected clock) uses it.
        File.WriteAllText(passwordFile, TestServer.BobPassword + "\n");
        // (advanced in steps: the retry timer may be set just after the log line appears)
        for (var i = 0; i < 100 && provider.Delivered("alice@example.test").Length == 0; i++)
        {
            time.Advance(TimeSpan.FromMinutes(10));
            await Task.Delay(50);
        }
        await provider.WaitForDeliveryAsync("alice@example.test");
        await home.WaitForLogAsync("event=delivery", $"queue_id={id}", "transport=smarthost", "status=sent");
    }

    [Fact]
    public async Task UntrustedCertificateDefersWhenVerificationIsOn()
    {
        await using var provider = await ProviderAsync();
        await using var home = await HomeAsync(provider.SubmissionPort, "starttls", PasswordFile(TestServer.BobPassword), verify: true);
        var id = await RelayAsync(home, "untrusted");
        var line = await home.WaitForLogAsync("event=delivery", $"queue_id={id}", "status=deferred");
        Assert.Contains("TLS certificate not accepted", line);
        Assert.Contains("Relay.Smarthost.VerifyCertificate", line);
        Assert.Equal(0, Count(provider, "event=auth_ok"));
        Assert.Empty(provider.Delivered("alice@example.test"));
    }
}
