using Postern.Server.Queue;

namespace Postern.Server.Tests;

/// <summary>
/// `postern queue retry|bounce` change a message's state through one pure function
/// (<see cref="QueueActions.OnState"/>), whether the running server or the command alone applies it:
/// the same state comes out, only the reply's words about when the rest follows differ.
/// </summary>
public sealed class AdminActionsAreOneImplementation
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 10, 0, 0, TimeSpan.Zero);

    private static SpooledMessage Message(string from = "alice@example.test")
    {
        var id = QueueId.New(Now);
        var envelope = new Envelope { Id = id.Value, From = from, Received = Now, Recipients = [new() { Address = "carol@example.test", Local = true }, new() { Address = "dave@peer.test" }, new() { Address = "erin@peer.test" }] };
        return new SpooledMessage(id, envelope, "/nonexistent", 0, 0);
    }

    private static DeliveryState State() => new()
    {
        Recipients =
        [
            new() { Address = "carol@example.test", Local = true, Status = RecipientStatus.Delivered, Notified = true },
            new() { Address = "dave@peer.test", Status = RecipientStatus.Deferred, Detail = "451 4.7.1 try later", NextAttempt = Now.AddMinutes(20), Attempts = 2 },
            new() { Address = "erin@peer.test", Status = RecipientStatus.Pending },
        ],
    };

    [Theory]
    [InlineData(AppliedBy.Server)]
    [InlineData(AppliedBy.Command)]
    public void RetryMakesTheDeferredDueAndNothingElse(AppliedBy by)
    {
        var m = Message();
        var state = State();
        var change = QueueActions.OnState("retry", m, state, by);
        Assert.True(change.Changed);
        Assert.Empty(change.Bounced);
        Assert.Equal("retrying", change.Reply.Result);
        Assert.EndsWith("(1 deferred recipient(s) made due)", change.Reply.Detail, StringComparison.Ordinal);
        Assert.Null(state.Recipients[1].NextAttempt);
        Assert.Equal(RecipientStatus.Deferred, state.Recipients[1].Status);
        Assert.Equal(2, state.Recipients[1].Attempts);
        Assert.Equal([RecipientStatus.Delivered, RecipientStatus.Deferred, RecipientStatus.Pending], state.Recipients.Select(r => r.Status));

        // A second retry finds nothing deferred with a time: no change to write.
        var again = QueueActions.OnState("retry", m, state, by);
        Assert.False(again.Changed);
        Assert.Equal("retrying", again.Reply.Result);
    }

    [Theory]
    [InlineData(AppliedBy.Server)]
    [InlineData(AppliedBy.Command)]
    public void BounceFailsEveryWaitingRecipientOnce(AppliedBy by)
    {
        var m = Message();
        var state = State();
        var change = QueueActions.OnState("bounce", m, state, by);
        Assert.True(change.Changed);
        Assert.Equal(["dave@peer.test", "erin@peer.test"], change.Bounced.Select(r => r.Address));
        Assert.All(change.Bounced, r =>
        {
            Assert.Equal(RecipientStatus.Bounced, r.Status);
            Assert.Equal(QueueControl.BounceDetail, r.Detail);
            Assert.Null(r.NextAttempt);
            Assert.False(r.Notified);
        });
        Assert.True(state.Recipients[0].Notified); // the delivered one is left as it was
        Assert.Equal("bounced", change.Reply.Result);
        Assert.Contains("2 recipient(s)", change.Reply.Detail, StringComparison.Ordinal);
        Assert.Contains("<alice@example.test>", change.Reply.Detail, StringComparison.Ordinal);

        var again = QueueActions.OnState("bounce", m, state, by);
        Assert.False(again.Changed);
        Assert.False(again.Reply.Ok);
        Assert.Equal("nothing_to_bounce", again.Reply.Result);
    }

    [Fact]
    public void BothPathsLeaveTheSameState()
    {
        foreach (var action in new[] { "retry", "flush", "bounce" })
        {
            var (server, command) = (State(), State());
            var m = Message();
            QueueActions.OnState(action, m, server, AppliedBy.Server);
            QueueActions.OnState(action, m, command, AppliedBy.Command);
            Assert.Equal(System.Text.Encoding.UTF8.GetString(EnvelopeCodec.EncodeState(server)), System.Text.Encoding.UTF8.GetString(EnvelopeCodec.EncodeState(command)));
        }
    }

    [Fact]
    public void TheRepliesSayWhenTheRestFollows()
    {
        var m = Message(from: "");
        Assert.Contains("is being tried now", QueueActions.OnState("retry", m, State(), AppliedBy.Server).Reply.Detail, StringComparison.Ordinal);
        Assert.Contains("as soon as the server starts", QueueActions.OnState("retry", m, State(), AppliedBy.Command).Reply.Detail, StringComparison.Ordinal);
        Assert.Contains("the bounce goes to the postmaster", QueueActions.OnState("bounce", m, State(), AppliedBy.Server).Reply.Detail, StringComparison.Ordinal);
        Assert.Contains("the server is not running", QueueActions.OnState("bounce", m, State(), AppliedBy.Command).Reply.Detail, StringComparison.Ordinal);
        Assert.Equal("failed", QueueActions.OnState("explode", m, State(), AppliedBy.Server).Reply.Result);
        Assert.Equal(3, QueueActions.Flushed(3, 1, AppliedBy.Server).Messages);
        Assert.EndsWith("; 1 on hold left alone", QueueActions.Flushed(3, 1, AppliedBy.Command).Detail, StringComparison.Ordinal);
    }
}
