using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Postern.Server.Configuration;
using Postern.Server.Logging;

namespace Postern.Server.Tests;

/// <summary>
/// Logging.Format json: one JSON object per line that System.Text.Json parses, with time, level,
/// event and every key of the event, whatever a client put into a value.
/// </summary>
public sealed class JsonLogLines
{
    private static readonly DateTimeOffset Now = new(2025, 3, 4, 5, 6, 7, 890, TimeSpan.Zero);

    /// <summary>Logs through a json provider and returns the lines written, after the writer drained.</summary>
    internal static List<string> Lines(Action<ILogger> log, LogFormat format = LogFormat.Json, LogLevel minimum = LogLevel.Information, Action<KeyValueLoggerProvider>? between = null)
    {
        var output = new StringWriter();
        using (var provider = new KeyValueLoggerProvider(output, minimum, new FakeTimeProvider(Now), format))
        {
            var logger = provider.CreateLogger("test");
            log(logger);
            between?.Invoke(provider);
        }
        var text = output.ToString();
        Assert.EndsWith("\n", text);
        return text[..^1].Split('\n').ToList();
    }

    private static JsonElement Parse(string line)
    {
        // The default reader: strict RFC 8259, no comments, no trailing commas.
        using var doc = JsonDocument.Parse(line);
        return doc.RootElement.Clone();
    }

    [Fact]
    public void EveryLineIsOneObjectWithTimeLevelEventAndEveryKey()
    {
        var lines = Lines(l =>
        {
            Log.Connect(l, "s1", "mx", "192.0.2.7", 40000);
            Log.Rejected(l, "s1", "Q1234ABCD", "192.0.2.7", "RCPT", 554, "5.7.1", RefusalReason.RelayDenied.Word(), "to=<x@remote.example>");
            Log.Accepted(l, "Q1234ABCD", "s1", "192.0.2.7", "<a@b.example>", 2, 1234, null, "ESMTP");
            Log.Delivery(l, "Q1234ABCD", "a@b", "a@b", "smtp", "mx.b", "192.0.2.9", 25, "TLS1.3", "sent", 1.25, "250 ok");
        });
        Assert.Equal(4, lines.Count);
        var connect = Parse(lines[0]);
        Assert.Equal("2025-03-04T05:06:07.890Z", connect.GetProperty("time").GetString());
        Assert.Equal("info", connect.GetProperty("level").GetString());
        Assert.Equal("connect", connect.GetProperty("event").GetString());
        Assert.Equal("s1", connect.GetProperty("session").GetString());
        Assert.Equal(40000, connect.GetProperty("port").GetInt32());

        var rejected = Parse(lines[1]);
        Assert.Equal("rejected", rejected.GetProperty("event").GetString());
        Assert.Equal("relay_denied", rejected.GetProperty("reason").GetString());
        Assert.Equal("to=<x@remote.example>", rejected.GetProperty("detail").GetString());
        Assert.Equal(554, rejected.GetProperty("code").GetInt32());
        Assert.Equal("5.7.1", rejected.GetProperty("enhanced").GetString());
        // The queue id is a plain property: grep for it finds the line, as in key=value.
        Assert.Equal("Q1234ABCD", rejected.GetProperty("queue_id").GetString());
        Assert.Contains("\"queue_id\":\"Q1234ABCD\"", lines[1], StringComparison.Ordinal);

        var accepted = Parse(lines[2]);
        Assert.Equal(JsonValueKind.Null, accepted.GetProperty("user").ValueKind);
        Assert.Equal(1234, accepted.GetProperty("size").GetInt64());
        Assert.Equal(1.25, Parse(lines[3]).GetProperty("delay").GetDouble());
    }

    [Theory]
    [InlineData("he said \"hi\"")]
    [InlineData("back\\slash")]
    [InlineData("line\r\nevent=forged key=1")]
    [InlineData("tab\there, nul\0, bell\a, esc\x1b, del\x7f")]
    [InlineData("C1: csi\u009b31m, nel\u0085, osc\u009d")]
    [InlineData("unicode: Grüße, 日本語, emoji 📬, separators \u2028\u2029")]
    [InlineData("")]
    public void ClientDataCannotBreakTheObject(string helo)
    {
        var lines = Lines(l => Log.Disconnect(l, "s1", "192.0.2.7", helo, 0, 0, 1, 2, "quit"));
        var line = Assert.Single(lines); // a CR or LF in a value never starts a second line
        Assert.DoesNotContain('\r', line);
        Assert.DoesNotContain('\x7f', line);
        Assert.DoesNotContain(line, c => c is >= '\x80' and < '\xa0' or '\u2028' or '\u2029'); // a terminal would obey C1 controls
        var o = Parse(line);
        Assert.Equal(helo, o.GetProperty("helo").GetString());
        Assert.Equal("disconnect", o.GetProperty("event").GetString());
        Assert.Equal(2, o.GetProperty("commands").GetInt32());
    }

    [Fact]
    public void NonAsciiIsWrittenAsItIsAndALoneSurrogateBecomesTheReplacementCharacter()
    {
        var lines = Lines(l => Log.Disconnect(l, "s1", "192.0.2.7", "Grüße \ud800 📬", 0, 0, 0, 0, "quit"));
        Assert.Contains("Grüße", lines[0], StringComparison.Ordinal);
        Assert.Contains("📬", lines[0], StringComparison.Ordinal);
        Assert.Equal("Grüße \ufffd 📬", Parse(lines[0]).GetProperty("helo").GetString());
        // The line is valid UTF-8 once written.
        var bytes = new UTF8Encoding(false, throwOnInvalidBytes: true).GetBytes(lines[0]);
        Assert.Equal(lines[0], new UTF8Encoding(false, true).GetString(bytes));
    }

    [Fact]
    public void AKeyNamedLikeTheEnvelopeIsPrefixedWithTheEventSoNoPropertyRepeats()
    {
        var line = Assert.Single(Lines(l => Log.Ban(l, "ip:192.0.2.7", "192.0.2.7", 5, 2, Now)));
        using var doc = JsonDocument.Parse(line);
        var names = doc.RootElement.EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal(names.Count, names.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal("warn", doc.RootElement.GetProperty("level").GetString());
        Assert.Equal(2, doc.RootElement.GetProperty("ban_level").GetInt32());
    }

    [Fact]
    public void AnExceptionIsAnErrorProperty()
    {
        var line = Assert.Single(Lines(l => Log.SessionError(l, "s1", "boom", new InvalidOperationException("the \"thing\" broke"))));
        var o = Parse(line);
        Assert.Equal("error", o.GetProperty("level").GetString());
        Assert.Equal("InvalidOperationException: the \"thing\" broke", o.GetProperty("error").GetString());
    }

    [Fact]
    public void LongValuesAreCutAsInKeyValue()
    {
        var line = Assert.Single(Lines(l => Log.Disconnect(l, "s1", "192.0.2.7", new string('a', 5000), 0, 0, 0, 0, "quit")));
        Assert.Equal(512, Parse(line).GetProperty("helo").GetString()!.Length);
    }

    [Fact]
    public void KeyValueLinesAreUnchangedByTheRewrite()
    {
        var line = Assert.Single(Lines(l => Log.Rejected(l, "s1", null, "192.0.2.7", "RCPT", 554, "5.7.1", "relay_denied", "to=<x@remote.example>"), LogFormat.KeyValue));
        Assert.Equal("2025-03-04T05:06:07.890Z info event=rejected session=s1 queue_id=\"\" ip=192.0.2.7 command=RCPT code=554 enhanced=5.7.1 reason=relay_denied detail=\"to=<x@remote.example>\"", line);
    }

    [Fact]
    public void KeyValueEscapesC1ControlsAndLineSeparatorsToo()
    {
        var line = Assert.Single(Lines(l => Log.Disconnect(l, "s1", "192.0.2.7", "a\u009b31mb\u0085c\u2028d", 0, 0, 0, 0, "quit"), LogFormat.KeyValue));
        Assert.Contains("helo=\"a\\x9b31mb\\x85c\\u2028d\"", line, StringComparison.Ordinal);
    }
}
