using System.Text;
using Postern.Protocol.Replies;
using Postern.Server.Configuration;
using Postern.Server.Filters.Rspamd;

namespace Postern.Server.Tests.Filters.Rspamd;

/// <summary>rspamd's action mapped to what the session does: the reply, the header changes, the new subject, the log summary.</summary>
public sealed class RspamdActionsToVerdicts
{
    private static RspamdReply Reply(string json) => RspamdReply.Parse(Encoding.UTF8.GetBytes(json));

    private static RspamdVerdict Verdict(string json, RspamdHeaders headers = RspamdHeaders.All) =>
        RspamdVerdict.From(Reply(json), headers, TimeSpan.FromMilliseconds(12));

    private static string? Added(RspamdVerdict v, string name) => v.AddHeaders.SingleOrDefault(h => h.Name == name).Value;

    [Fact]
    public void RejectAnswers554WithRspamdsText()
    {
        var v = Verdict("""{"action":"reject","score":15,"required_score":15,"symbols":{"GTUBE":{"score":0}},"messages":{"smtp_message":"Gtube pattern"}}""");
        Assert.Equal(RspamdVerdictKind.Reject, v.Kind);
        Assert.Equal(new SmtpReply(554, "5.7.1", "Gtube pattern"), v.Reply);
        Assert.Empty(v.AddHeaders);
        Assert.Equal("rspamd=reject action=\"reject\" score=15.00 required=15.00 symbols=GTUBE(0.00) ms=12", v.Summary);
    }

    [Fact]
    public void RejectWithoutTextUsesTheDefault() =>
        Assert.Equal(new SmtpReply(554, "5.7.1", RspamdVerdict.DefaultRejectText), Verdict("""{"action":"reject","score":20,"required_score":15}""").Reply);

    [Fact]
    public void RspamdsTextCannotBreakTheReply()
    {
        // A multi-line or binary smtp_message would end the reply line or start another reply.
        var v = Verdict("{\"action\":\"reject\",\"messages\":{\"smtp_message\":\"spam\\r\\n250 2.0.0 ok\\u0000\\u00e9" + new string('x', 1000) + "\"}}");
        Assert.DoesNotContain('\r', v.Reply!.Text);
        Assert.DoesNotContain('\n', v.Reply.Text);
        Assert.DoesNotContain('\0', v.Reply.Text);
        Assert.True(v.Reply.Text.Length <= RspamdVerdict.MaxReplyTextLength);
        Assert.True(v.Reply.Text.All(c => c is >= ' ' and < '\x7f'));
        Assert.StartsWith("spam  250 2.0.0 ok ?x", v.Reply.Text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("soft reject", "Try again later")]
    [InlineData("greylist", "Try again later")]
    public void SoftRejectAndGreylistAnswer451(string action, string text)
    {
        var v = Verdict($$"""{"action":"{{action}}","score":5,"required_score":15}""");
        Assert.Equal(RspamdVerdictKind.TempFail, v.Kind);
        Assert.Equal(new SmtpReply(451, "4.7.1", text), v.Reply);
        Assert.Equal(new SmtpReply(451, "4.7.1", "Ratelimit exceeded"),
            Verdict("{\"action\":\"" + action + "\",\"messages\":{\"smtp_message\":\"Ratelimit exceeded\"}}").Reply);
    }

    [Fact]
    public void NoActionAcceptsWithTheXSpamFields()
    {
        var v = Verdict("""
            {"action":"no action","score":3.9,"required_score":15,
             "symbols":{"MIME_GOOD":{"score":-0.1},"HFILTER_HOSTNAME_UNKNOWN":{"score":2.5},"HFILTER_FROMHOST_NORES_A_OR_MX":{"score":1.5},"ARC_NA":{"score":0}},
             "milter":{"remove_headers":{"X-Spam":0}}}
            """);
        Assert.Equal(RspamdVerdictKind.Accept, v.Kind);
        Assert.Null(v.Reply);
        Assert.Equal("No, score=3.90 required=15.00", Added(v, "X-Spam-Status"));
        Assert.Equal("3.90", Added(v, "X-Spam-Score"));
        Assert.Equal("no action", Added(v, "X-Spam-Action"));
        Assert.Equal("HFILTER_HOSTNAME_UNKNOWN(2.50),\r\n\tHFILTER_FROMHOST_NORES_A_OR_MX(1.50), MIME_GOOD(-0.10), ARC_NA(0.00)", Added(v, "X-Spam-Symbols"));
        // rspamd's removal, and a sender's own X-Spam-* fields.
        Assert.Contains(new RspamdHeaderRemoval("X-Spam", 0), v.RemoveHeaders);
        Assert.Contains(new RspamdHeaderRemoval("X-Spam-Status", 0), v.RemoveHeaders);
        Assert.Contains(new RspamdHeaderRemoval("X-Spam-Symbols", 0), v.RemoveHeaders);
    }

    [Fact]
    public void AddHeaderMarksTheMessageAsSpam()
    {
        var v = Verdict("""{"action":"add header","score":7.25,"required_score":15,"milter":{"add_headers":{"X-Spamd-Bar":"+++++++"}}}""");
        Assert.Equal(RspamdVerdictKind.Accept, v.Kind);
        Assert.Equal("Yes, score=7.25 required=15.00", Added(v, "X-Spam-Status"));
        Assert.Equal("add header", Added(v, "X-Spam-Action"));
        Assert.Equal("+++++++", Added(v, "X-Spamd-Bar"));
    }

    [Fact]
    public void RewriteSubjectGivesTheNewSubject()
    {
        var v = Verdict("""{"action":"rewrite subject","score":9,"required_score":15,"subject":"***SPAM*** hello"}""");
        Assert.Equal(RspamdVerdictKind.RewriteSubject, v.Kind);
        Assert.Equal("***SPAM*** hello", v.NewSubject);
        Assert.Equal("Yes, score=9.00 required=15.00", Added(v, "X-Spam-Status"));
        // Without a subject from rspamd there is nothing to rewrite: an accept with the fields.
        Assert.Equal(RspamdVerdictKind.Accept, Verdict("""{"action":"rewrite subject","score":9}""").Kind);
    }

    [Fact]
    public void TheHeadersSettingChoosesOurFieldsNotRspamds()
    {
        const string json = """{"action":"no action","score":1,"required_score":15,"milter":{"add_headers":{"X-Rspamd-Server":"mx1"}}}""";
        Assert.Equal(["X-Spam-Status", "X-Spam-Score", "X-Rspamd-Server"], Verdict(json, RspamdHeaders.Score).AddHeaders.Select(h => h.Name));
        Assert.Equal(["X-Rspamd-Server"], Verdict(json, RspamdHeaders.None).AddHeaders.Select(h => h.Name));
        Assert.DoesNotContain(Verdict(json, RspamdHeaders.None).RemoveHeaders, r => r.Name == "X-Spam-Status");
    }

    [Fact]
    public void RspamdsOwnXSpamStatusReplacesOurs()
    {
        // rspamd's milter_headers module has an x-spam-status routine: one field of a name, not two.
        var v = Verdict("""{"action":"no action","score":1,"required_score":15,"milter":{"add_headers":{"X-Spam-Status":"No, score=1.00"}}}""");
        Assert.Equal("No, score=1.00", Assert.Single(v.AddHeaders, h => h.Name == "X-Spam-Status").Value);
    }

    [Fact]
    public void TheSymbolListIsBoundedAndFolded()
    {
        var symbols = string.Join(",", Enumerable.Range(0, 300).Select(i => $"\"SYMBOL_NUMBER_{i:000}\":{{\"score\":{i / 100.0:0.00}}}"));
        var v = Verdict("{\"action\":\"no action\",\"score\":1,\"required_score\":15,\"symbols\":{" + symbols + "}}");
        var value = Added(v, "X-Spam-Symbols")!;
        Assert.True(value.Length <= RspamdVerdict.MaxSymbolsHeaderLength, $"{value.Length} characters");
        Assert.EndsWith("...", value, StringComparison.Ordinal);
        Assert.StartsWith("SYMBOL_NUMBER_299(2.99)", value, StringComparison.Ordinal);
        var lines = ("X-Spam-Symbols: " + value).Split("\r\n");
        Assert.All(lines, l => Assert.True(l.Length <= 78, $"a line of {l.Length}: {l}"));
        Assert.All(lines.Skip(1), l => Assert.StartsWith("\t", l, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("a\nb", "a\r\n\tb")]
    [InlineData("a\r\n b", "a\r\n b")]
    [InlineData("a\rb", "a\r\n\tb")]
    [InlineData("a\r\n\r\nb", "a\r\n\tb")]
    [InlineData("a\n\n b", "a\r\n b")]
    [InlineData("value\r\n", "value")]
    [InlineData("x\u0000y\u001bz", "x y z")]
    public void RspamdsHeaderValuesAreFoldedNeverBare(string value, string folded) => Assert.Equal(folded, RspamdVerdict.Fold(value));

    [Fact]
    public void AFieldWithABadNameOrAHugeValueIsDropped()
    {
        var huge = new string('a', RspamdVerdict.MaxHeaderValueLength + 1);
        var v = Verdict("{\"action\":\"no action\",\"milter\":{\"add_headers\":{\"Bad Name\":\"x\",\"Colon:Name\":\"x\",\"\":\"x\",\"X-Huge\":\"" + huge + "\",\"X-Good\":\"y\"},\"remove_headers\":{\"Bad Name\":0}}}", RspamdHeaders.None);
        Assert.Equal(["X-Good"], v.AddHeaders.Select(h => h.Name));
        Assert.Empty(v.RemoveHeaders);
    }

    [Fact]
    public void UnavailableIsATempFailUnlessFailOpen()
    {
        var closed = RspamdVerdict.Unavailable("Connection refused", failOpen: false, TimeSpan.Zero, outageStarted: true);
        Assert.Equal(new SmtpReply(451, "4.7.1", "Service unavailable - try again later"), closed.Reply);
        Assert.Equal("rspamd=unavailable detail=\"Connection refused\"", closed.Summary);
        var open = RspamdVerdict.Unavailable("Connection refused", failOpen: true, TimeSpan.Zero, outageStarted: true);
        Assert.Equal(RspamdVerdictKind.Unavailable, open.Kind);
        Assert.Null(open.Reply);
        Assert.Empty(open.AddHeaders);
    }
}
