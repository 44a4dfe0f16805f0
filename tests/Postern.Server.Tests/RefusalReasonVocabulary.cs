using System.Text.RegularExpressions;
using Postern.Protocol.Replies;
using Postern.Server.Logging;

namespace Postern.Server.Tests;

/// <summary>The reason words of refusals: a closed set, each one greppable bare, each one documented.</summary>
public sealed partial class RefusalReasonVocabulary
{
    [GeneratedRegex("^[a-z][a-z0-9_]*$")]
    private static partial Regex Word();

    [Fact]
    public void EveryReasonIsOneUniqueLowerCaseWord()
    {
        var words = Enum.GetValues<RefusalReason>().Select(r => r.Word()).ToList();
        Assert.All(words, w => Assert.Matches(Word(), w));
        Assert.Equal(words.Count, words.Distinct(StringComparer.Ordinal).Count());
        // The words the issue names, spelled as an admin greps them.
        Assert.Subset(words.ToHashSet(), new HashSet<string> { "relay_denied", "dmarc", "spf", "dnsbl", "rate" });
    }

    [Fact]
    public void EveryReasonHasARowInTelemetryMd()
    {
        var doc = File.ReadAllText(RepositoryFiles.Under("docs/telemetry.md"));
        var missing = Enum.GetValues<RefusalReason>().Select(r => r.Word())
            .Where(w => !doc.Contains($"| `{w}` |", StringComparison.Ordinal)).ToList();
        Assert.True(missing.Count == 0, "docs/telemetry.md has no row for: " + string.Join(", ", missing));
    }

    [Fact]
    public void RepliesTheParserAndCommandTableChooseGetTheirReason()
    {
        Assert.Equal(RefusalReason.BadSequence, RefusalReasons.Of(Reply.NeedMailFirst));
        Assert.Equal(RefusalReason.BadSequence, RefusalReasons.Of(Reply.SendHeloFirst));
        Assert.Equal(RefusalReason.TlsRequired, RefusalReasons.Of(Reply.TlsRequired));
        Assert.Equal(RefusalReason.TlsRequired, RefusalReasons.Of(Reply.EncryptionRequiredForAuth));
        Assert.Equal(RefusalReason.Syntax, RefusalReasons.Of(Reply.BadSenderSyntax));
        Assert.Equal(RefusalReason.Syntax, RefusalReasons.Of(Reply.UnknownParameter));
        Assert.Equal(RefusalReason.NotImplemented, RefusalReasons.Of(Reply.ParameterNotImplemented));
        Assert.Equal(RefusalReason.LineTooLong, RefusalReasons.Of(Reply.LineTooLong));
        Assert.Equal(RefusalReason.BareLineEnding, RefusalReasons.Of(Reply.BareLineEndingInCommand));
        Assert.Equal(RefusalReason.NonSmtp, RefusalReasons.Of(Reply.NonSmtpInput));
        Assert.Equal(RefusalReason.UnknownCommand, RefusalReasons.Of(Reply.UnknownCommand));
    }
}
