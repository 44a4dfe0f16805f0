using System.Net;
using Postern.Server.Configuration;
using Postern.Server.Filters.Milter;

namespace Postern.Server.Tests.Filters;

/// <summary>Several milters in one session: asked in order, the first refusal wins, a milter that is down counts as its default action.</summary>
public sealed class MilterChainOrder
{
    private static readonly IPEndPoint Client = new(IPAddress.Parse("192.0.2.7"), 40123);

    private static Milter Gone(MilterDefaultAction action) =>
        new(new MilterOptions { Name = "gone", Address = "unix:/nonexistent/postern-test/milter.sock", DefaultAction = action }, TimeProvider.System, new ScriptedMilter.ListLogger());

    [Fact]
    public async Task AMilterDownWithDefaultAcceptIsPassedOverAndTheNextOneDecides()
    {
        await using var m = new ScriptedMilter();
        await using var chain = MilterChain.Open([Gone(MilterDefaultAction.Accept), m.Milter()], "s1", submission: false);
        var connect = chain.ConnectAsync(null, Client);
        await m.NegotiateAsync(MilterActions.None, MilterSteps.NoHelo | MilterSteps.NoMail);
        await m.ReadUntilAsync('C');
        await m.SendAsync('c');
        Assert.Equal(MilterVerdictKind.Continue, (await connect).Kind);
        Assert.Equal(MilterVerdictKind.Continue, (await chain.MailAsync("a@example.org", [])).Kind);
        var rcpt = chain.RcptAsync("b@example.com", []);
        await m.ReadUntilAsync('R');
        await m.SendStringsAsync('y', "550 5.7.1 Not for you");
        var verdict = await rcpt;
        Assert.Equal(MilterVerdictKind.Reject, verdict.Kind);
        Assert.Equal("550 5.7.1 Not for you", verdict.Reply!.ToString());
    }

    [Fact]
    public async Task AMilterDownWithDefaultTempfailRefusesBeforeTheNextIsAsked()
    {
        await using var m = new ScriptedMilter();
        await using var chain = MilterChain.Open([Gone(MilterDefaultAction.Tempfail), m.Milter()], "s1", submission: false);
        var verdict = await chain.ConnectAsync(null, Client);
        Assert.Equal(MilterVerdictKind.TempFail, verdict.Kind);
        Assert.Equal("451 4.7.1 Service unavailable - try again later", verdict.Reply!.ToString());
        Assert.StartsWith("milter gone unavailable: connect: ", verdict.Detail);
    }

    [Fact]
    public void OnSubmissionOnlyTheMiltersThatAskForItAreAsked()
    {
        var mx = new Milter(new MilterOptions { Name = "spam", Address = "unix:/run/a.sock" }, TimeProvider.System, new ScriptedMilter.ListLogger());
        var dkim = new Milter(new MilterOptions { Name = "dkim", Address = "unix:/run/b.sock", Submission = true }, TimeProvider.System, new ScriptedMilter.ListLogger());
        Assert.True(MilterChain.Open([mx], "s1", submission: true).IsEmpty);
        Assert.False(MilterChain.Open([mx, dkim], "s1", submission: true).IsEmpty);
        Assert.False(MilterChain.Open([mx], "s1", submission: false).IsEmpty);
    }
}
