using System.Text;
using Postern.Server.Filters.Rspamd;

namespace Postern.Server.Tests.Filters.Rspamd;

/// <summary>rspamd's /checkv2 JSON reply read into <see cref="RspamdReply"/>: the shapes rspamd 3.x writes, and what is refused.</summary>
public sealed class RspamdReplyParsing
{
    // rspamd 3.4's reply to the GTUBE string, byte for byte.
    private const string Gtube = """{"is_skipped":true,"score":15.0,"required_score":15.0,"action":"reject","symbols":{"GTUBE":{"name":"GTUBE","score":0.0,"metric_score":0.0}},"messages":{"smtp_message":"Gtube pattern"},"message-id":"1@example.com","time_real":0.241972}""";

    private static RspamdReply Parse(string json) => RspamdReply.Parse(Encoding.UTF8.GetBytes(json));

    [Fact]
    public void GtubeIsARejectWithRspamdsText()
    {
        var r = Parse(Gtube);
        Assert.Equal(RspamdAction.Reject, r.Action);
        Assert.Equal(15.0, r.Score);
        Assert.Equal(15.0, r.RequiredScore);
        Assert.Equal("Gtube pattern", r.SmtpMessage);
        Assert.True(r.IsSkipped);
        Assert.Equal([new RspamdSymbol("GTUBE", 0)], r.Symbols);
    }

    [Fact]
    public void ACleanReplyHasItsSymbolsScoresAndHeaderRemoval()
    {
        var r = Parse("""
            {"is_skipped":false,"score":3.900000,"required_score":15.0,"action":"no action",
             "symbols":{"MIME_GOOD":{"name":"MIME_GOOD","score":-0.100000,"metric_score":-0.100000,"description":"Known content-type","options":["text/plain"]},
                        "HFILTER_HOSTNAME_UNKNOWN":{"name":"HFILTER_HOSTNAME_UNKNOWN","score":2.500000,"metric_score":2.500000}},
             "messages":{},"message-id":"2@example.com","time_real":3.005517,"milter":{"remove_headers":{"X-Spam":0}}}
            """);
        Assert.Equal(RspamdAction.NoAction, r.Action);
        Assert.Equal(3.9, r.Score, 6);
        Assert.Null(r.SmtpMessage);
        Assert.False(r.IsSkipped);
        Assert.Contains(new RspamdSymbol("HFILTER_HOSTNAME_UNKNOWN", 2.5), r.Symbols);
        Assert.Contains(new RspamdSymbol("MIME_GOOD", -0.1), r.Symbols);
        Assert.Equal([new RspamdHeaderRemoval("X-Spam", 0)], r.RemoveHeaders);
        Assert.Empty(r.AddHeaders);
    }

    [Theory]
    [InlineData("no action", RspamdAction.NoAction)]
    [InlineData("greylist", RspamdAction.Greylist)]
    [InlineData("add header", RspamdAction.AddHeader)]
    [InlineData("add_header", RspamdAction.AddHeader)]
    [InlineData("rewrite subject", RspamdAction.RewriteSubject)]
    [InlineData("soft reject", RspamdAction.SoftReject)]
    [InlineData("reject", RspamdAction.Reject)]
    public void EachActionIsKnown(string name, RspamdAction action) =>
        Assert.Equal(action, Parse($$"""{"action":"{{name}}","score":1,"required_score":15}""").Action);

    [Fact]
    public void AddHeadersComeAsStringsObjectsWithOrderAndArrays()
    {
        var r = Parse("""
            {"action":"add header","score":7,"required_score":15,
             "milter":{"add_headers":{
                 "X-Spamd-Bar":"+++++++",
                 "X-Spamd-Result":{"value":"default: False [7.00 / 15.00]","order":0},
                 "X-Rspamd-Queue-Id":{"value":"QID42","order":-1},
                 "X-Rspamd-Server":{"value":"mx1","order":1},
                 "ARC-Seal":[{"value":"i=1; a=rsa-sha256","order":1},"i=2; a=rsa-sha256"]},
               "remove_headers":{"X-Spam":0,"X-Old":1,"X-Last":-1}}}
            """);
        Assert.Equal(
            [
                new RspamdHeaderField("X-Spamd-Bar", "+++++++"),
                new RspamdHeaderField("X-Spamd-Result", "default: False [7.00 / 15.00]", 0),
                new RspamdHeaderField("X-Rspamd-Queue-Id", "QID42", RspamdHeaderField.Append),
                new RspamdHeaderField("X-Rspamd-Server", "mx1", 1),
                new RspamdHeaderField("ARC-Seal", "i=1; a=rsa-sha256", 1),
                new RspamdHeaderField("ARC-Seal", "i=2; a=rsa-sha256"),
            ],
            r.AddHeaders);
        Assert.Equal([new("X-Spam", 0), new("X-Old", 1), new("X-Last", -1)], r.RemoveHeaders);
    }

    [Fact]
    public void ATopLevelDkimSignatureIsAddedOnce()
    {
        var alone = Parse("""{"action":"no action","dkim-signature":"v=1; a=rsa-sha256; d=example.com; s=mail; b=abc"}""");
        Assert.Equal([new RspamdHeaderField("DKIM-Signature", "v=1; a=rsa-sha256; d=example.com; s=mail; b=abc")], alone.AddHeaders);

        // rspamd 2.x and later put its signature in milter.add_headers as well: it must not be added twice.
        var both = Parse("""
            {"action":"no action","dkim-signature":"v=1; b=abc",
             "milter":{"add_headers":{"DKIM-Signature":{"value":"v=1; b=abc","order":1}}}}
            """);
        Assert.Single(both.AddHeaders);
        Assert.Equal(1, both.AddHeaders[0].Order);

        var two = Parse("""{"action":"no action","dkim-signature":["v=1; d=a.example; b=x","v=1; d=b.example; b=y"]}""");
        Assert.Equal(2, two.AddHeaders.Count);
    }

    [Fact]
    public void RewriteSubjectCarriesTheNewSubject() =>
        Assert.Equal("***SPAM*** hello", Parse("""{"action":"rewrite subject","score":9,"required_score":15,"subject":"***SPAM*** hello"}""").Subject);

    [Fact]
    public void UnknownFieldsAreIgnored() =>
        Assert.Equal(RspamdAction.NoAction, Parse("""{"action":"no action","urls":["http://x.example"],"emails":[],"thresholds":{"reject":15},"future":{"a":[1,2,{"b":null}]}}""").Action);

    [Theory]
    [InlineData("", "not JSON")]
    [InlineData("{\"action\":\"reject\"", "not JSON")]
    [InlineData("<html>502 Bad Gateway</html>", "not JSON")]
    [InlineData("[]", "where an object was expected")]
    [InlineData("{\"score\":1}", "no action")]
    [InlineData("{\"action\":\"discard\"}", "unknown action 'discard'")]
    [InlineData("{\"action\":7}", "'action' is a Number")]
    [InlineData("{\"action\":\"reject\",\"score\":\"lots\"}", "'score' is not a number")]
    [InlineData("{\"action\":\"reject\",\"score\":1e999}", "'score' is not a number")]
    [InlineData("{\"error\":\"Message is too large\"}", "rspamd reports an error: Message is too large")]
    public void WhatIsNotAReplyIsRefusedWithTheReason(string json, string reason)
    {
        var e = Assert.Throws<FormatException>(() => Parse(json));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DeepNestingIsRefusedNotRecursedInto()
    {
        var deep = "{\"action\":\"no action\",\"x\":" + new string('[', 100) + new string(']', 100) + "}";
        Assert.Throws<FormatException>(() => Parse(deep));
    }

    [Fact]
    public void SymbolsAndHeaderChangesAreBounded()
    {
        var symbols = string.Join(",", Enumerable.Range(0, 2000).Select(i => $"\"S{i}\":{{\"name\":\"S{i}\",\"score\":0.1}}"));
        var headers = string.Join(",", Enumerable.Range(0, 2000).Select(i => $"\"X-H{i}\":\"v\""));
        var r = Parse("{\"action\":\"no action\",\"symbols\":{" + symbols + "},\"milter\":{\"add_headers\":{" + headers + "}}}");
        Assert.Equal(RspamdReply.MaxSymbols, r.Symbols.Count);
        Assert.Equal(RspamdReply.MaxHeaderChanges, r.AddHeaders.Count);
    }
}
