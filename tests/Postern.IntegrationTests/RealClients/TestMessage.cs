using System.Text;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.RealClients;

/// <summary>
/// The message every real client sends, chosen to catch what a careless server changes: lines that
/// need dot-stuffing, 8-bit UTF-8 text, and a line at the RFC 5321 §4.5.3.1.6 limit of 998 octets.
/// </summary>
internal static class TestMessage
{
    /// <summary>Exactly 998 octets (multi-octet UTF-8 included), so 1000 with its CRLF: the longest legal text line.</summary>
    public static readonly string LongLine = MakeLine("998 octets, Grüße 日本語: ", 998);

    /// <summary>A fixed date: on submission Postern adds Date when it is missing (RFC 6409 §8), so we always send one.</summary>
    public const string Date = "Mon, 02 Mar 2026 10:00:00 +0000";

    /// <summary>
    /// The body, CRLF line ends, ending in CRLF. Swaks treats "%WORD%" and a backslash before n as
    /// its own tokens, so the text holds neither.
    /// </summary>
    public static string Body(string client, Route route) =>
        string.Join("\r\n",
            $"Hello from {client} over {route}.",
            ".leading dot",
            "..two dots",
            ".x",
            "...",
            "Grüße, 日本語",
            LongLine,
            "Bye.") + "\r\n";

    public static string MessageId(string client, Route route) =>
        $"<{client.ToLowerInvariant()}.{route}.{Guid.NewGuid():N}@client.example>";

    /// <summary>The complete message as the client hands it to the server (before any dot-stuffing).</summary>
    public static byte[] Raw(string client, Route route)
    {
        var text =
            $"From: <{route.Sender()}>\r\n" +
            $"To: <{route.Recipient()}>\r\n" +
            $"Subject: {client} over {route}\r\n" +
            $"Date: {Date}\r\n" +
            $"Message-ID: {MessageId(client, route)}\r\n" +
            "MIME-Version: 1.0\r\n" +
            "Content-Type: text/plain; charset=utf-8\r\n" +
            "Content-Transfer-Encoding: 8bit\r\n" +
            "\r\n" +
            Body(client, route);
        return Encoding.UTF8.GetBytes(text);
    }

    /// <summary>
    /// Waits for the one delivery the route leads to, then checks that the message after Postern's
    /// trace lines is byte for byte what the client sent, and that the Received header names the
    /// route per RFC 3848 (and the TLS version when there was TLS).
    /// </summary>
    public static async Task AssertArrivedUnchangedAsync(TestServer server, Route route, byte[] sent)
    {
        var delivered = Assert.Single(await server.WaitForDeliveryAsync(route.Recipient()));
        var text = Encoding.Latin1.GetString(delivered);
        Assert.StartsWith($"Return-Path: <{route.Sender()}>\r\n", text, StringComparison.Ordinal);

        // Latin-1 maps each octet to one char, so this string comparison is exact and its diff readable.
        var arrived = TestServer.BodyAfterTrace(delivered);
        Assert.Equal(Encoding.Latin1.GetString(sent), Encoding.Latin1.GetString(arrived));

        // Guard the test itself: what arrived holds every hard case, intact and on its own line.
        var utf8 = Encoding.UTF8.GetString(arrived);
        foreach (var line in new[] { ".leading dot", "..two dots", ".x", "...", "Grüße, 日本語", LongLine, "Content-Transfer-Encoding: 8bit" })
        {
            Assert.Contains("\r\n" + line + "\r\n", utf8, StringComparison.Ordinal);
        }

        var received = ReceivedHeader(text);
        Assert.Contains($" with {route.Rfc3848Protocol()} id ", received, StringComparison.Ordinal);
        if (route.UsesTls())
        {
            Assert.Contains("(version=TLSv1.", received, StringComparison.Ordinal);
        }
        else
        {
            Assert.DoesNotContain("version=", received, StringComparison.Ordinal);
        }
        Assert.Contains($"for <{route.Recipient()}>", received, StringComparison.Ordinal);
    }

    /// <summary>The first Received header, its folded lines joined by a space.</summary>
    public static string ReceivedHeader(string message)
    {
        var start = message.IndexOf("\r\nReceived: ", StringComparison.Ordinal);
        Assert.True(start >= 0, "no Received header in:\n" + message);
        var sb = new StringBuilder();
        var pos = start + 2;
        while (true)
        {
            var eol = message.IndexOf("\r\n", pos, StringComparison.Ordinal);
            sb.Append(message, pos, eol - pos).Append(' ');
            pos = eol + 2;
            if (pos >= message.Length || message[pos] != '\t')
            {
                return sb.ToString().TrimEnd();
            }
        }
    }

    private static string MakeLine(string prefix, int octets)
    {
        var sb = new StringBuilder(prefix);
        var fill = Encoding.UTF8.GetByteCount(prefix);
        for (var i = 0; fill < octets; i++, fill++)
        {
            sb.Append((char)('0' + (i % 10)));
        }
        var line = sb.ToString();
        if (Encoding.UTF8.GetByteCount(line) != octets)
        {
            throw new InvalidOperationException($"line is {Encoding.UTF8.GetByteCount(line)} octets, not {octets}");
        }
        return line;
    }
}
