using System.Globalization;
using System.Net;
using System.Text;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.RealClients;

/// <summary>MailKit's SmtpClient, the .NET client most applications send with, on every listener.</summary>
public sealed class MailKitSendsOnEveryListener
{
    [Theory]
    [InlineData(Route.MxPlain, null)]
    [InlineData(Route.MxStartTls, null)]
    [InlineData(Route.SubmissionStartTlsAuth, "PLAIN")]
    [InlineData(Route.SubmissionsImplicitTlsAuth, "LOGIN")]
    public async Task DeliversUnchanged(Route route, string? mechanism)
    {
        await using var server = await TestServer.StartAsync();
        var message = Build(route);
        var sent = Bytes(message);
        Assert.Contains("Content-Transfer-Encoding: 8bit\r\n", Encoding.UTF8.GetString(sent), StringComparison.Ordinal);

        using var transcript = new MemoryStream();
        using (var client = new SmtpClient(new ProtocolLogger(transcript, leaveOpen: true)))
        {
            client.LocalDomain = "client.example";
            client.ServerCertificateValidationCallback = (_, _, _, _) => true;
            client.CheckCertificateRevocation = false;
            var security = route switch
            {
                Route.MxPlain => SecureSocketOptions.None,
                Route.SubmissionsImplicitTlsAuth => SecureSocketOptions.SslOnConnect,
                _ => SecureSocketOptions.StartTls,
            };
            await client.ConnectAsync("127.0.0.1", route.Port(server), security);
            Assert.Equal(route.UsesTls(), client.IsSecure);
            Assert.True(client.Capabilities.HasFlag(SmtpCapabilities.EightBitMime), "8BITMIME not offered");
            if (mechanism is not null)
            {
                var credentials = new NetworkCredential(RouteFacts.Alice, TestServer.AlicePassword);
                await client.AuthenticateAsync(mechanism == "PLAIN"
                    ? new SaslMechanismPlain(credentials)
                    : new SaslMechanismLogin(credentials));
            }
            var reply = await client.SendAsync(message);
            Assert.StartsWith("2.0.0", reply, StringComparison.Ordinal);
            await client.DisconnectAsync(quit: true);
        }

        // MailKit may prepare a message before sending it; what it sent must still be what we built.
        Assert.Equal(Encoding.Latin1.GetString(sent), Encoding.Latin1.GetString(Bytes(message)));
        var log = Encoding.UTF8.GetString(transcript.ToArray());
        Assert.Contains("BODY=8BITMIME", log, StringComparison.Ordinal);
        Assert.Contains("C: DATA\r\n", log, StringComparison.Ordinal);
        // RFC 5321 §4.5.2: the client dot-stuffed these lines, so the server had something to undo.
        Assert.Contains("..leading dot", log, StringComparison.Ordinal);
        Assert.Contains("...two dots", log, StringComparison.Ordinal);
        if (mechanism is not null)
        {
            Assert.Contains($"AUTH {mechanism}", log, StringComparison.Ordinal);
            Assert.Contains(server.LogLines, l => l.Contains($"user={RouteFacts.Alice}", StringComparison.Ordinal)
                && l.Contains($"mechanism={mechanism}", StringComparison.Ordinal));
        }
        await TestMessage.AssertArrivedUnchangedAsync(server, route, sent);
    }

    /// <summary>The same content as <see cref="TestMessage.Raw"/>, built the way an application builds it.</summary>
    private static MimeMessage Build(Route route)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(route.Sender()));
        message.To.Add(MailboxAddress.Parse(route.Recipient()));
        message.Subject = $"MailKit over {route}";
        // On submission Postern adds Date and Message-ID when missing (RFC 6409 §8): set both so nothing changes.
        message.Date = DateTimeOffset.Parse(TestMessage.Date, CultureInfo.InvariantCulture);
        message.MessageId = TestMessage.MessageId("mailkit", route).Trim('<', '>');
        var body = new TextPart("plain") { ContentTransferEncoding = ContentEncoding.EightBit };
        body.SetText("utf-8", TestMessage.Body("MailKit", route));
        message.Body = body;
        return message;
    }

    private static byte[] Bytes(MimeMessage message)
    {
        using var ms = new MemoryStream();
        message.WriteTo(new FormatOptions { NewLineFormat = NewLineFormat.Dos }, ms);
        return ms.ToArray();
    }
}
