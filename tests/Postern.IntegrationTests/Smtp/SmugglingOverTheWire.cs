using System.Text;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>
/// Issue 2: each end-of-data variant followed by a second transaction inside one DATA yields one
/// message or a refusal, never two - checked end to end over a real socket, for DATA and BDAT.
/// </summary>
public sealed class SmugglingOverTheWire
{
    public static TheoryData<string> Variants => new()
    {
        "\\n.\\n", "\\n.\\r", "\\r.\\n", "\\r.\\r", "\\n.\\r\\n", "\\r.\\r\\n", "\\r\\n.\\n", "\\r\\n.\\r",
        "\\r\\n.\\r\\r\\n", "\\r\\r\\n.\\r\\n", "\\r\\r\\n.\\r\\r\\n", "\\r\\n\\0.\\r\\n", "\\r\\n.\\0\\r\\n", "\\n\\n.\\n\\n",
    };

    private static byte[] Payload(string variant) => Dialogues.TranscriptRunner.Decode(
        "From: alice@example.test\\r\\nSubject: first\\r\\n\\r\\nfirst" + variant +
        "MAIL FROM:<admin@remote.example>\\r\\nRCPT TO:<bob@example.test>\\r\\nDATA\\r\\nFrom: admin@remote.example\\r\\nSubject: smuggled\\r\\n\\r\\nsmuggled\\r\\n.\\r\\n");

    [Theory]
    [MemberData(nameof(Variants))]
    public async Task DataYieldsOneMessageOrARefusal(string variant)
    {
        await using var server = await TestServer.StartAsync();
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        await c.CommandAsync("MAIL FROM:<sender@remote.example>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        await c.CommandAsync("DATA", 354);
        await c.SendAsync(Payload(variant));
        // Whatever follows, the client then ends its own data and quits.
        await c.SendAsync("\r\n.\r\nQUIT\r\n");
        var replies = new List<string>();
        while (true)
        {
            var r = await c.ReadReplyAsync();
            if (r.Length == 0)
            {
                break;
            }
            replies.Add(r);
        }
        await Task.Delay(300);
        var accepted = replies.Count(r => r.StartsWith("250 2.0.0 OK queued", StringComparison.Ordinal));
        Assert.True(accepted <= 1, string.Join(" | ", replies));
        Assert.Empty(server.Delivered("bob@example.test"));
        Assert.DoesNotContain(replies, r => r.StartsWith("250 2.1.0", StringComparison.Ordinal));
        if (accepted == 0)
        {
            Assert.Contains(replies, r => r.StartsWith("554 5.6.0", StringComparison.Ordinal));
        }
        foreach (var m in server.Delivered("alice@example.test"))
        {
            // A message that got through holds the would-be second transaction as content, refused or not.
            Assert.Contains("first", Encoding.Latin1.GetString(File.ReadAllBytes(m)));
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public async Task BdatYieldsOneMessageOrARefusal(string variant)
    {
        await using var server = await TestServer.StartAsync();
        await using var c = await RawSmtp.OpenAsync(server.MxPort);
        await c.CommandAsync("MAIL FROM:<sender@remote.example>", 250);
        await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
        var chunk = Payload(variant);
        await c.SendAsync([.. Encoding.ASCII.GetBytes($"BDAT {chunk.Length} LAST\r\n"), .. chunk]);
        var reply = await c.ReadReplyAsync();
        Assert.True(reply.StartsWith("250 2.0.0 OK queued", StringComparison.Ordinal) || reply.StartsWith("554 5.6.0", StringComparison.Ordinal), reply);
        await Task.Delay(300);
        Assert.Empty(server.Delivered("bob@example.test"));
        Assert.True(server.Delivered("alice@example.test").Length <= 1);
    }
}
