using System.Globalization;
using System.Net;
using System.Text;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Postern.IntegrationTests.Infrastructure;
using Postern.IntegrationTests.RealClients;

namespace Postern.IntegrationTests.Delivery;

/// <summary>
/// Delivery to the world with a real receiving MTA: alice submits with MailKit, NSD says that the
/// MX of pf.test is a private Postfix instance (127.0.0.31), and Postern delivers to it over
/// opportunistic STARTTLS. What Postfix accepts arrives unchanged; what it refuses comes back to
/// alice as an RFC 3464 report carrying Postfix's own words.
/// </summary>
public sealed class PostfixReceives
{
    private const string Address = "127.0.0.31";

    private static readonly string Zone = DnsServer.Zone("pf.test", $"""
        @        IN MX 10 mx.pf.test.
        mx       IN A   {Address}

        """);

    /// <summary>A 998-octet line that starts with a dot: the client stuffs it to 999 on the wire.</summary>
    private static readonly string DotLongLine = "." + TestMessage.LongLine[1..];

    [Fact]
    public async Task SubmittedMessageArrivesInPostfixsMaildirByteForByte()
    {
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?> { ["pf.test"] = Zone });
        await using var postfix = await PostfixPeer.StartAsync(Address, "pf.test", "someone");
        await using var server = await StartPosternAsync(dns, postfix);

        var message = Build("byte for byte", "someone@pf.test");
        var sent = Bytes(message);
        var id = await SubmitAsync(server, message);
        // MailKit may prepare a message before sending it; what it sent must still be what we built.
        Assert.Equal(Encoding.Latin1.GetString(sent), Encoding.Latin1.GetString(Bytes(message)));

        var delivered = Assert.Single(await postfix.WaitForDeliveryAsync("someone"));
        await server.WaitForLogAsync("event=delivery", $"queue_id={id}", "someone@pf.test", "relay=mx.pf.test", "tls=TLSv1.", "status=sent");
        await server.WaitForLogAsync("event=removed", $"queue_id={id}");

        // Postfix keeps messages with LF line ends (its queue and Maildir files are in the local text
        // convention), so the CRLFs of the wire become LFs; every other octet must be what alice sent.
        // Latin-1 maps each octet to one char, so these string comparisons are exact.
        var text = Encoding.Latin1.GetString(delivered);
        var submitted = Encoding.Latin1.GetString(sent).Replace("\r\n", "\n", StringComparison.Ordinal);
        Assert.DoesNotContain("\r", submitted, StringComparison.Ordinal);
        Assert.True(text.Length > submitted.Length, "delivered message is shorter than what was sent:\n" + text);
        Assert.Equal(submitted, text[^submitted.Length..]);

        // Before it: Postfix's trace fields, then Postern's Received header, once, and nothing else.
        var trace = HeaderFields(text[..^submitted.Length]);
        Assert.Equal(["Return-Path", "X-Original-To", "Delivered-To", "Received", "Received"], trace.Select(f => f[..f.IndexOf(':', StringComparison.Ordinal)]));
        Assert.Equal("Return-Path: <alice@example.test>", trace[0]);
        Assert.Equal("Delivered-To: someone@pf.test", trace[2]);
        var postfixReceived = trace[3];
        Assert.Contains("by mx.pf.test (Postfix) with ESMTPS id ", postfixReceived, StringComparison.Ordinal);
        Assert.Contains("(using TLSv1.", postfixReceived, StringComparison.Ordinal);
        Assert.Contains("for <someone@pf.test>", postfixReceived, StringComparison.Ordinal);
        var posternReceived = trace[4];
        Assert.StartsWith("Received: from client.example ([127.0.0.1]) by mx.example.test (Postern) with ESMTPSA id " + id, posternReceived, StringComparison.Ordinal);
        Assert.Equal(1, text.Split("(Postern)").Length - 1); // Postern's Received header, once in the whole file

        // Guard the test itself: what arrived holds every hard case, intact and on its own line.
        var utf8 = Encoding.UTF8.GetString(delivered);
        foreach (var line in new[] { ".leading dot", "..two dots", ".", "Grüße, 日本語", TestMessage.LongLine, DotLongLine, "Content-Transfer-Encoding: 8bit" })
        {
            Assert.Contains("\n" + line + "\n", utf8, StringComparison.Ordinal);
        }

        // Postfix's side of the story: a TLS session from Postern, and delivery into the Maildir.
        await postfix.WaitForLogAsync("TLS connection established from");
        await postfix.WaitForLogAsync("to=<someone@pf.test>", "relay=virtual", "status=sent (delivered to maildir)");
    }

    [Fact]
    public async Task RecipientPostfixRefusesBouncesWithPostfixsReply()
    {
        using var dns = await DnsServer.StartAsync(new Dictionary<string, string?> { ["pf.test"] = Zone });
        await using var postfix = await PostfixPeer.StartAsync(Address, "pf.test", "someone");
        await using var server = await StartPosternAsync(dns, postfix);

        // One message, two recipients: Postfix takes one and refuses the other at RCPT.
        var id = await SubmitAsync(server, Build("half of it bounces", "someone@pf.test", "nobody@pf.test"));

        const string Refusal = "550 5.1.1 <nobody@pf.test>: Recipient address rejected: User unknown in virtual mailbox table";
        // (After one accepted RCPT Postfix logs the refusal under its queue id, not as NOQUEUE.)
        await postfix.WaitForLogAsync(": reject: RCPT from", Refusal);
        await server.WaitForLogAsync("event=delivery", $"queue_id={id}", "nobody@pf.test", "status=bounced", Refusal);
        await server.WaitForLogAsync("event=delivery", $"queue_id={id}", "someone@pf.test", "status=sent");
        Assert.Contains("Subject: half of it bounces", Encoding.UTF8.GetString(Assert.Single(await postfix.WaitForDeliveryAsync("someone"))), StringComparison.Ordinal);

        var dsn = MimeMessage.Load(new MemoryStream(Assert.Single(await server.WaitForDeliveryAsync("alice@example.test"))));
        Assert.Equal("Undelivered Mail Returned to Sender", dsn.Subject);
        var report = Assert.IsType<MultipartReport>(dsn.Body);
        Assert.Equal("delivery-status", report.ReportType);
        var status = Assert.Single(report.OfType<MessageDeliveryStatus>());
        var groups = status.StatusGroups.Where(g => g.Count > 0).ToList();
        Assert.Equal(2, groups.Count); // the per-message fields, and the one recipient that failed
        Assert.Equal("dns; mx.example.test", groups[0]["Reporting-MTA"]);
        var recipient = groups[1];
        Assert.Equal("rfc822; nobody@pf.test", recipient["Final-Recipient"]);
        Assert.Equal("failed", recipient["Action"]);
        Assert.Equal("5.1.1", recipient["Status"]);
        Assert.Equal("smtp; " + Refusal, recipient["Diagnostic-Code"]);
        var returned = Assert.Single(report.OfType<MessagePart>());
        Assert.Equal("half of it bounces", returned.Message!.Subject);
        await server.WaitForLogAsync("event=removed", $"queue_id={id}");
    }

    private static Task<TestServer> StartPosternAsync(DnsServer dns, PostfixPeer postfix) => TestServer.StartAsync(o =>
    {
        o.Dns.Servers = [dns.Server];
        o.Delivery.RemotePort = postfix.EndPoint.Port;
    });

    /// <summary>A message with the hard cases: 8-bit UTF-8, lines that need dot-stuffing, 998-octet lines.</summary>
    private static MimeMessage Build(string subject, params string[] to)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("alice@example.test"));
        foreach (var address in to)
        {
            message.To.Add(MailboxAddress.Parse(address));
        }
        message.Subject = subject;
        // On submission Postern adds Date and Message-ID when missing: set both so nothing changes.
        message.Date = DateTimeOffset.Parse(TestMessage.Date, CultureInfo.InvariantCulture);
        message.MessageId = $"{Guid.NewGuid():N}@client.example";
        var body = new TextPart("plain") { ContentTransferEncoding = ContentEncoding.EightBit };
        body.SetText("utf-8", string.Join("\r\n",
            "Hello Postfix, from Postern.",
            ".leading dot",
            "..two dots",
            ".",
            "Grüße, 日本語",
            TestMessage.LongLine,
            DotLongLine,
            "Bye.") + "\r\n");
        message.Body = body;
        return message;
    }

    private static byte[] Bytes(MimeMessage message)
    {
        using var ms = new MemoryStream();
        message.WriteTo(new FormatOptions { NewLineFormat = NewLineFormat.Dos }, ms);
        return ms.ToArray();
    }

    /// <summary>Submits as alice on the submission port (STARTTLS, then AUTH); returns the queue id.</summary>
    private static async Task<string> SubmitAsync(TestServer server, MimeMessage message)
    {
        using var client = new SmtpClient();
        client.LocalDomain = "client.example";
        client.ServerCertificateValidationCallback = (_, _, _, _) => true;
        client.CheckCertificateRevocation = false;
        await client.ConnectAsync("127.0.0.1", server.SubmissionPort, SecureSocketOptions.StartTls);
        await client.AuthenticateAsync(new NetworkCredential("alice@example.test", TestServer.AlicePassword));
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(quit: true);
        Assert.StartsWith("2.0.0 OK queued as ", reply, StringComparison.Ordinal);
        return reply.Split(' ')[^1];
    }

    /// <summary>The header fields of a block of LF-terminated lines, each with its folded lines joined by a space.</summary>
    private static List<string> HeaderFields(string block)
    {
        var fields = new List<string>();
        Assert.EndsWith("\n", block, StringComparison.Ordinal);
        foreach (var line in block[..^1].Split('\n'))
        {
            Assert.True(line.Length > 0, "empty line among the trace fields:\n" + block);
            if (line[0] is ' ' or '\t')
            {
                Assert.True(fields.Count > 0, "continuation line without a field: " + line);
                fields[^1] += " " + line.TrimStart(' ', '\t');
            }
            else
            {
                fields.Add(line);
            }
        }
        return fields;
    }
}
