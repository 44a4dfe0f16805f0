using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 12, item 8: an authenticated user could put another user's address in From: and Postern
/// DKIM-signed it. Every From: and Sender: address must be the user's (SPEC §4), as MAIL FROM must.
/// </summary>
public sealed class HeaderSenderOfTheUser
{
    private static MimeMessage Message(string from, string? sender = null)
    {
        var m = new MimeMessage();
        m.From.AddRange(InternetAddressList.Parse(from));
        if (sender is not null)
        {
            m.Sender = MailboxAddress.Parse(sender);
        }
        m.To.Add(MailboxAddress.Parse("bob@example.test"));
        m.Subject = "who sends";
        m.Body = new TextPart("plain") { Text = "hello\r\n" };
        return m;
    }

    private static async Task<SmtpClient> AliceAsync(TestServer server)
    {
        var smtp = new SmtpClient { ServerCertificateValidationCallback = (_, _, _, _) => true };
        await smtp.ConnectAsync("127.0.0.1", server.SubmissionPort, SecureSocketOptions.StartTls);
        await smtp.AuthenticateAsync("alice@example.test", TestServer.AlicePassword);
        return smtp;
    }

    [Theory]
    [InlineData("Bob <bob@example.test>", null)]
    [InlineData("alice@example.test, bob@example.test", "alice@example.test")]
    [InlineData("alice@example.test", "bob@example.test")]
    [InlineData("friends: bob@example.test;", null)]
    [InlineData("boss@remote.example", null)]
    public async Task AnotherUsersAddressInTheHeaderIsRefused(string from, string? sender)
    {
        await using var server = await TestServer.StartAsync();
        using var smtp = await AliceAsync(server);
        var e = await Assert.ThrowsAsync<SmtpCommandException>(() => smtp.SendAsync(Message(from, sender), MailboxAddress.Parse("alice@example.test"), [MailboxAddress.Parse("bob@example.test")]));
        Assert.Equal(550, (int)e.StatusCode);
        Assert.Contains("not owned by the authenticated user", e.Message, StringComparison.Ordinal);
        await server.WaitForLogAsync("reason=sender_not_owned", "user alice@example.test may not send as");
        // The session goes on: the same user's own mail is taken next.
        await smtp.SendAsync(Message("Alice <alice@example.test>"));
        Assert.Single(await server.WaitForDeliveryAsync("bob@example.test"));
    }

    [Theory]
    [InlineData("Alice <alice@example.test>")]
    [InlineData("alice+news@example.test")]
    [InlineData("alice.alias@example.test")]
    public async Task TheUsersOwnAddressesAreTaken(string from)
    {
        await using var server = await TestServer.StartAsync();
        using var smtp = await AliceAsync(server);
        await smtp.SendAsync(Message(from), MailboxAddress.Parse("alice@example.test"), [MailboxAddress.Parse("bob@example.test")]);
        Assert.Single(await server.WaitForDeliveryAsync("bob@example.test"));
    }
}
