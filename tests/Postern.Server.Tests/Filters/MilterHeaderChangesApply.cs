using System.Text;
using Postern.Server.Filters.Milter;

namespace Postern.Server.Tests.Filters;

/// <summary>A milter's header changes applied to the header section it was sent, with Sendmail's counting.</summary>
public sealed class MilterHeaderChangesApply
{
    private const string Section = "Received: from a\r\n\tby b\r\nSubject: hi\r\nX-Spam-Flag: YES\r\nx-spam-flag: again\r\n\r\n";

    private static string Apply(params MilterModification[] changes) =>
        Encoding.UTF8.GetString(MilterHeaderChanges.Apply(Encoding.UTF8.GetBytes(Section), changes));

    [Fact]
    public void AddAppendsAndKeepsTheEmptyLine() =>
        Assert.Equal(Section[..^2] + "X-Spam-Status: No, score=0.1\r\n\ttests=NONE\r\n\r\n",
            Apply(new MilterModification.AddHeader("X-Spam-Status", "No, score=0.1\n\ttests=NONE")));

    [Fact]
    public void InsertCountsEveryFieldFromZero()
    {
        Assert.StartsWith("DKIM-Signature: v=1\r\nReceived: from a\r\n\tby b\r\n", Apply(new MilterModification.InsertHeader(0, "DKIM-Signature", "v=1")));
        Assert.StartsWith("Received: from a\r\n\tby b\r\nDKIM-Signature: v=1\r\nSubject", Apply(new MilterModification.InsertHeader(1, "DKIM-Signature", "v=1")));
        Assert.EndsWith("again\r\nX-Late: 1\r\n\r\n", Apply(new MilterModification.InsertHeader(99, "X-Late", "1")));
    }

    [Fact]
    public void ChangeAndDeleteCountTheFieldsOfThatNameFromOne()
    {
        Assert.Contains("X-Spam-Flag: YES\r\nx-spam-flag: NO\r\n", Apply(new MilterModification.ChangeHeader(2, "X-Spam-Flag", "NO")));
        Assert.Contains("Subject: [SPAM] hi\r\n", Apply(new MilterModification.ChangeHeader(0, "subject", "[SPAM] hi")));
        Assert.Equal("Received: from a\r\n\tby b\r\nSubject: hi\r\nx-spam-flag: again\r\n\r\n", Apply(new MilterModification.DeleteHeader(1, "X-Spam-Flag")));
        Assert.Equal(Section, Apply(new MilterModification.DeleteHeader(3, "X-Spam-Flag")));
        Assert.EndsWith("X-New: v\r\n\r\n", Apply(new MilterModification.ChangeHeader(1, "X-New", "v")));
    }

    [Fact]
    public void AValueWithItsOwnLeadingSpaceIsWrittenRightAfterTheColon() =>
        Assert.EndsWith("X-A:  two spaces\r\n\r\n", Apply(new MilterModification.AddHeader("X-A", "  two spaces")));

    [Fact]
    public void EnvelopeChangesLeaveTheHeaderAlone() =>
        Assert.Equal(Section, Apply(new MilterModification.AddRecipient("<a@example.org>", null), new MilterModification.Quarantine("x")));
}
