using System.Net;
using Postern.IntegrationTests.Infrastructure;
using Postern.MailAuth.Dns;

namespace Postern.IntegrationTests.MailAuth;

/// <summary>
/// Issue 12: a failure of mail authentication for one message (here the DNS seam throws while the
/// DKIM key is looked up) refuses that message with 451 4.7.0 and nothing else: the session goes
/// on, and the next message, in the same session and in a new one, is checked afresh and accepted.
/// On main the exception ended the session (451 4.3.0 "internal error", connection closed).
/// </summary>
public sealed class TransientFailureFailsOneMessage
{
    private static string Message(string subject) =>
        $"From: someone@sender.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n" +
        $"Message-ID: <{subject}@sender.test>\r\n" +
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=sender.test; s=sel; h=from:to:subject; bh=AAAA; b=AAAA\r\n\r\nhello\r\n";

    [Fact]
    public async Task TheNextMessageIsAccepted()
    {
        var dns = new ThrowsOnceForDkimKeys();
        await using var server = await TestServer.StartAsync(o => o.MailAuth.Enabled = true, mailAuthDns: dns);
        await using (var c = await RawSmtp.OpenAsync(server.MxPort, ehlo: "client.sender.test"))
        {
            Assert.StartsWith("451 4.7.0", await SendAsync(c, "first"));
            Assert.Equal(1, dns.Thrown);
            Assert.StartsWith("250", await SendAsync(c, "second"));
        }
        await using (var c = await RawSmtp.OpenAsync(server.MxPort, ehlo: "client.sender.test"))
        {
            Assert.StartsWith("250", await SendAsync(c, "third"));
        }
        await server.WaitForLogAsync("event=mail_auth_error");
        await server.WaitForLogAsync("event=rejected", "command=DATA", "code=451", "reason=mail_auth_error");
        Assert.Equal(2, (await server.WaitForDeliveryAsync("alice@example.test", 2)).Length);
        Assert.Equal(1, dns.Thrown);
    }

    private static async Task<string> SendAsync(RawSmtp c, string subject)
    {
        await c.CommandAsync("MAIL FROM:<bounce@sender.test>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        return await c.CommandAsync(Message(subject) + ".");
    }

    /// <summary>No records anywhere (NXDOMAIN); the first DKIM key query throws, as a bug in a resolver would.</summary>
    private sealed class ThrowsOnceForDkimKeys : IMailAuthDns
    {
        private int _thrown;

        public int Thrown => Volatile.Read(ref _thrown);

        public Task<DnsAnswer<string>> TxtAsync(string name, CancellationToken cancellationToken = default) =>
            name.Contains("._domainkey.", StringComparison.Ordinal) && Interlocked.Exchange(ref _thrown, 1) == 0
                ? Task.FromException<DnsAnswer<string>>(new InvalidOperationException("injected failure"))
                : Task.FromResult(DnsAnswer<string>.NxDomain);

        public Task<DnsAnswer<IPAddress>> AAsync(string name, CancellationToken cancellationToken = default) => Task.FromResult(DnsAnswer<IPAddress>.NxDomain);

        public Task<DnsAnswer<IPAddress>> AaaaAsync(string name, CancellationToken cancellationToken = default) => Task.FromResult(DnsAnswer<IPAddress>.NxDomain);

        public Task<DnsAnswer<MxRecord>> MxAsync(string name, CancellationToken cancellationToken = default) => Task.FromResult(DnsAnswer<MxRecord>.NxDomain);

        public Task<DnsAnswer<string>> PtrAsync(IPAddress address, CancellationToken cancellationToken = default) => Task.FromResult(DnsAnswer<string>.NxDomain);
    }
}
