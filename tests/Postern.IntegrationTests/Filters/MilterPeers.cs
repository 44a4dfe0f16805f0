using System.Diagnostics;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.IntegrationTests.Infrastructure;
using Postern.Server.Configuration;
using Postern.Server.Filters.Milter;

namespace Postern.IntegrationTests.Filters;

/// <summary>
/// Real milters from Debian, each a private instance in a temporary folder, and a way to pass one
/// message through a <see cref="MilterSession"/> the way an SMTP session would, stage by stage.
/// </summary>
internal static class MilterPeers
{
    public static readonly IPEndPoint Client = new(IPAddress.Parse("192.0.2.7"), 40123);

    /// <summary>GTUBE (spamassassin.apache.org/gtube): every SpamAssassin and rspamd scores it as spam, 1000 points.</summary>
    public const string Gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

    public static Milter MilterAt(string name, string address) =>
        new(new MilterOptions { Name = name, Address = address, ConnectTimeout = TimeSpan.FromSeconds(10), CommandTimeout = TimeSpan.FromSeconds(30), ContentTimeout = TimeSpan.FromSeconds(60) },
            TimeProvider.System, NullLogger.Instance);

    /// <summary>A message, CRLF line endings, header section and body.</summary>
    public static byte[] Message(string from, string to, string subject, string body, string? messageId = null) =>
        Encoding.UTF8.GetBytes(
            $"From: Alice <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: Mon, 07 Dec 2026 12:00:00 +0000\r\n" +
            $"Message-ID: <{messageId ?? Guid.NewGuid().ToString("N")}@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" +
            body.Replace("\r\n", "\n", StringComparison.Ordinal).Replace("\n", "\r\n", StringComparison.Ordinal));

    /// <summary>The stages of one session with one message; the result of the end of message, or the first verdict that ended it.</summary>
    public static async Task<(MilterMessageResult Result, byte[] NewBody)> PassAsync(Milter milter, string from, string to, byte[] message, Action<MilterMacros>? macros = null)
    {
        await using var session = milter.OpenSession("test");
        session.Macros["j"] = "mx.example.com";
        session.Macros["daemon_name"] = "mx";
        session.Macros["v"] = "Postern";
        session.Macros["i"] = "4F2A9C01";
        macros?.Invoke(session.Macros);
        var connect = await session.ConnectAsync("client.example.org", Client);
        Assert.True(connect.Kind == MilterVerdictKind.Continue, $"connect: {connect}");
        var helo = await session.HeloAsync("client.example.org");
        Assert.True(helo.Kind == MilterVerdictKind.Continue, $"helo: {helo}");
        var mail = await session.MailAsync(from, ["SIZE=" + message.Length]);
        Assert.True(mail.Kind == MilterVerdictKind.Continue, $"mail: {mail}");
        var rcpt = await session.RcptAsync(to, []);
        Assert.True(rcpt.Kind == MilterVerdictKind.Continue, $"rcpt: {rcpt}");
        var split = IndexOf(message, "\r\n\r\n"u8) + 4;
        var sink = new MemoryStream();
        var result = await session.DataAsync(message.AsMemory(0, split), new MemoryStream(message, split, message.Length - split), sink);
        return (result, sink.ToArray());
    }

    private static int IndexOf(byte[] haystack, ReadOnlySpan<byte> needle) => haystack.AsSpan().IndexOf(needle);

    public static ProcessStartInfo Command(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        return psi;
    }
}
