using System.Text;
using Postern.Server.Queue;

namespace Postern.Server.Tests;

/// <summary>
/// A recipient's status is a closed type in memory and the same lowercase word on disk as when it was
/// a string (docs/queue-format.md): files written before read back, files written now read in an older
/// version, and any other spelling makes the state file unreadable.
/// </summary>
public sealed class RecipientStatusOnDisk
{
    [Theory]
    [InlineData(RecipientStatus.Pending, "pending")]
    [InlineData(RecipientStatus.Deferred, "deferred")]
    [InlineData(RecipientStatus.Delivered, "delivered")]
    [InlineData(RecipientStatus.Bounced, "bounced")]
    public void EachStatusIsWrittenAndReadAsItsWord(RecipientStatus status, string word)
    {
        var state = new DeliveryState { Recipients = [new RecipientState { Address = "dave@peer.test", Status = status }] };
        var json = Encoding.UTF8.GetString(EnvelopeCodec.EncodeState(state));
        Assert.Contains($"\"Status\":\"{word}\"", json, StringComparison.Ordinal);
        Assert.Equal(status, EnvelopeCodec.DecodeState(Encoding.UTF8.GetBytes(json)).Recipients[0].Status);
        Assert.Equal(word, status.Word());
    }

    [Theory]
    [InlineData("\"lost\"")]
    [InlineData("\"Deferred\"")] // one spelling only: JsonStringEnumConverter would take this
    [InlineData("1")] // and this
    [InlineData("\"1\"")]
    [InlineData("null")]
    [InlineData("\"\"")]
    public void AnyOtherSpellingIsUnreadable(string status)
    {
        var json = $$"""{"Recipients":[{"Address":"dave@peer.test","Local":false,"Status":{{status}}}]}""";
        Assert.Throws<InvalidDataException>(() => EnvelopeCodec.DecodeState(Encoding.UTF8.GetBytes(json)));
    }

    [Fact]
    public void AMissingStatusIsPendingAsBefore()
    {
        var state = EnvelopeCodec.DecodeState("""{"Recipients":[{"Address":"dave@peer.test"}]}"""u8);
        Assert.Equal(RecipientStatus.Pending, state.Recipients[0].Status);
    }

    [Fact]
    public void AStatusOutsideTheTypeIsNeverWritten() =>
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            EnvelopeCodec.EncodeState(new DeliveryState { Recipients = [new RecipientState { Address = "dave@peer.test", Status = (RecipientStatus)7 }] }));
}
