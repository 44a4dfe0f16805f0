using System.Buffers.Binary;
using System.Net;
using System.Text;
using Postern.Server.Configuration;
using Postern.Server.Filters.Milter;

namespace Postern.Server.Tests.Filters;

/// <summary>
/// The client's side of the dialogue against <see cref="ScriptedMilter"/>: stages, macros, body
/// chunks, the changes at end of message, and every way a milter can fail (silence past the
/// timeout, a frame too large, a change it did not negotiate) ending in Unavailable, never a hang.
/// </summary>
public sealed class MilterSessionDialogue
{
    private static readonly IPEndPoint Client = new(IPAddress.Parse("192.0.2.7"), 40123);

    private static async Task<MilterSession> Connected(ScriptedMilter m, MilterActions actions, MilterSteps steps, Action<MilterOptions>? configure = null,
        Milter? milter = null)
    {
        var session = (milter ?? m.Milter(configure)).OpenSession("s1");
        var connect = session.ConnectAsync("client.example.org", Client);
        await m.NegotiateAsync(actions, steps);
        if ((steps & (MilterSteps.NoConnect | MilterSteps.NoReplyConnect)) == 0)
        {
            await m.ReadUntilAsync('C');
            await m.SendAsync('c');
        }
        Assert.Equal(MilterVerdictKind.Continue, (await connect).Kind);
        return session;
    }

    [Fact]
    public async Task TheConnectStageCarriesNameFamilyPortAddressAndTheRequestedMacros()
    {
        await using var m = new ScriptedMilter();
        var session = m.Milter().OpenSession("s1");
        session.Macros["j"] = "mx.example.com";
        session.Macros["{daemon_name}"] = "mx";
        session.Macros["auth_authen"] = "not asked for at connect";
        var connect = session.ConnectAsync("client.example.org", Client);
        await m.NegotiateAsync(MilterActions.None, MilterSteps.None, 6, (MilterStage.Connect, "j {client_addr} {daemon_name} {not_set}"));
        var frames = await m.ReadUntilAsync('C');
        await m.SendAsync('c');
        Assert.Equal(MilterVerdictKind.Continue, (await connect).Kind);

        var macro = Assert.Single(frames, f => f.Command == 'D');
        Assert.Equal((byte)'C', macro.Data[0]);
        Assert.Equal(["j", "mx.example.com", "{client_addr}", "192.0.2.7", "{daemon_name}", "mx"], ScriptedMilter.Strings(macro.Data[1..]));
        var c = frames[^1].Data;
        Assert.Equal("client.example.org\0", Encoding.ASCII.GetString(c[..19]));
        Assert.Equal((byte)'4', c[19]);
        Assert.Equal(40123, BinaryPrimitives.ReadUInt16BigEndian(c.AsSpan(20)));
        Assert.Equal("192.0.2.7\0", Encoding.ASCII.GetString(c[22..]));
        await session.DisposeAsync();
        Assert.Equal('Q', (await m.ReadAsync()).Command);
    }

    [Fact]
    public async Task AnUnverifiedClientIsNamedByItsAddressInBrackets()
    {
        await using var m = new ScriptedMilter();
        var session = m.Milter().OpenSession("s1");
        var connect = session.ConnectAsync(null, new IPEndPoint(IPAddress.Parse("::ffff:192.0.2.8"), 25));
        await m.NegotiateAsync(MilterActions.None, MilterSteps.None);
        var c = (await m.ReadUntilAsync('C'))[^1].Data;
        await m.SendAsync('c');
        await connect;
        Assert.StartsWith("[192.0.2.8]\0" + "4", Encoding.ASCII.GetString(c));
    }

    [Fact]
    public async Task MailAndRcptCarryTheirPathsAndParametersAndARejectIsForOneRecipient()
    {
        await using var m = new ScriptedMilter();
        var session = await Connected(m, MilterActions.None, MilterSteps.NoHelo);
        Assert.Equal(MilterVerdictKind.Continue, (await session.HeloAsync("client.example.org")).Kind); // Left out: nothing sent.

        var mail = session.MailAsync("alice@example.org", ["SIZE=1000", "BODY=8BITMIME"]);
        var frames = await m.ReadUntilAsync('M');
        await m.SendAsync('c');
        Assert.Equal(MilterVerdictKind.Continue, (await mail).Kind);
        Assert.Equal(["<alice@example.org>", "SIZE=1000", "BODY=8BITMIME"], ScriptedMilter.Strings(frames[^1].Data));
        Assert.Contains(frames, f => f.Command == 'D' && ScriptedMilter.Strings(f.Data[1..]).Contains("alice@example.org"));

        var rcpt = session.RcptAsync("nobody@example.com", []);
        await m.ReadUntilAsync('R');
        await m.SendStringsAsync('y', "550 5.1.1 No such user here");
        var refused = await rcpt;
        Assert.Equal(MilterVerdictKind.Reject, refused.Kind);
        Assert.Equal("550 5.1.1 No such user here", refused.Reply!.ToString());

        var second = session.RcptAsync("bob@example.com", []);
        await m.ReadUntilAsync('R');
        await m.SendAsync('t');
        var tempfail = await second;
        Assert.Equal(MilterVerdictKind.TempFail, tempfail.Kind);
        Assert.Equal(MilterVerdict.DefaultTempFail, tempfail.Reply);
        Assert.Contains(m.Log.Lines, l => l.Contains("event=milter_verdict") && l.Contains("stage=rcpt") && l.Contains("verdict=reject"));
    }

    [Fact]
    public async Task TheBodyGoesInChunksOfAtMost65535AndTheChangesComeBackInOrder()
    {
        await using var m = new ScriptedMilter();
        var session = await Connected(m, MilterActions.All, MilterSteps.NoHelo);
        var mail = session.MailAsync("alice@example.org", []);
        await m.ReadUntilAsync('M');
        await m.SendAsync('c');
        await mail;

        var body = new byte[200_000];
        for (var i = 0; i < body.Length; i++)
        {
            body[i] = (byte)('a' + (i % 26));
        }
        var sink = new MemoryStream();
        var data = session.DataAsync("Subject: hi\r\nX-Spam-Flag: YES\r\n\r\n"u8.ToArray(), new MemoryStream(body), sink);
        Assert.Equal('T', (await m.ReadAsync()).Command);
        await m.SendAsync('c');
        var h1 = await m.ReadAsync();
        Assert.Equal(["Subject", "hi"], ScriptedMilter.Strings(h1.Data));
        await m.SendAsync('c');
        await m.ReadAsync();
        await m.SendAsync('c');
        Assert.Equal('N', (await m.ReadAsync()).Command);
        await m.SendAsync('c');
        var received = new MemoryStream();
        var chunks = new List<int>();
        while (received.Length < body.Length)
        {
            var (command, chunk) = await m.ReadAsync();
            Assert.Equal('B', command);
            chunks.Add(chunk.Length);
            received.Write(chunk);
            await m.SendAsync('c');
        }
        Assert.Equal([65535, 65535, 65535, 3395], chunks);
        Assert.Equal(body, received.ToArray());
        Assert.Equal('E', (await m.ReadUntilAsync('E'))[^1].Command);

        await m.SendStringsAsync('h', "X-Spam-Status", "No, score=0.1");
        await m.SendIndexedAsync('i', 0, "DKIM-Signature", "v=1; a=rsa-sha256");
        await m.SendIndexedAsync('m', 1, "X-Spam-Flag", "");
        await m.SendIndexedAsync('m', 1, "Subject", "[ok] hi");
        await m.SendAsync('p');
        await m.SendStringsAsync('e', "<bounce@example.org>");
        await m.SendStringsAsync('+', "<archive@example.org>");
        await m.SendStringsAsync('2', "<copy@example.org>", "NOTIFY=NEVER");
        await m.SendStringsAsync('-', "<alice@example.org>");
        await m.SendAsync('b', "new body\r\n"u8.ToArray());
        await m.SendAsync('b', "second chunk\r\n"u8.ToArray());
        await m.SendStringsAsync('q', "looks odd");
        await m.SendAsync('a');
        var result = await data;

        Assert.Equal(MilterVerdictKind.Accept, result.Verdict.Kind);
        Assert.Equal<MilterModification>(
        [
            new MilterModification.AddHeader("X-Spam-Status", "No, score=0.1"),
            new MilterModification.InsertHeader(0, "DKIM-Signature", "v=1; a=rsa-sha256"),
            new MilterModification.DeleteHeader(1, "X-Spam-Flag"),
            new MilterModification.ChangeHeader(1, "Subject", "[ok] hi"),
            new MilterModification.ChangeSender("<bounce@example.org>", null),
            new MilterModification.AddRecipient("<archive@example.org>", null),
            new MilterModification.AddRecipient("<copy@example.org>", "NOTIFY=NEVER"),
            new MilterModification.DeleteRecipient("<alice@example.org>"),
            new MilterModification.Quarantine("looks odd"),
            new MilterModification.ReplaceBody(24),
        ], result.Modifications);
        Assert.True(result.BodyReplaced);
        Assert.Equal("new body\r\nsecond chunk\r\n", Encoding.ASCII.GetString(sink.ToArray()));

        // After the end of message the next transaction starts without an abort.
        var next = session.MailAsync("carol@example.org", []);
        Assert.Equal('M', (await m.ReadUntilAsync('M'))[^1].Command);
        await m.SendAsync('c');
        await next;
    }

    [Fact]
    public async Task SkipStopsTheBodyAndTheEndOfMessageFollows()
    {
        await using var m = new ScriptedMilter();
        var session = await Connected(m, MilterActions.None, MilterSteps.NoHelo | MilterSteps.Skip | MilterSteps.NoHeaders | MilterSteps.NoEndOfHeaders | MilterSteps.NoData);
        var mail = session.MailAsync("a@example.org", []);
        await m.ReadUntilAsync('M');
        await m.SendAsync('c');
        await mail;
        var data = session.DataAsync("Subject: x\r\n\r\n"u8.ToArray(), new MemoryStream(new byte[150_000]));
        Assert.Equal('B', (await m.ReadAsync()).Command);
        await m.SendAsync('s');
        Assert.Equal('E', (await m.ReadAsync()).Command);
        await m.SendAsync('c');
        Assert.Equal(MilterVerdictKind.Continue, (await data).Verdict.Kind);
    }

    [Fact]
    public async Task NoReplyStagesAreNotWaitedFor()
    {
        await using var m = new ScriptedMilter();
        var session = await Connected(m, MilterActions.None, MilterSteps.NoReplyConnect | MilterSteps.NoReplyHelo | MilterSteps.NoReplyMail);
        Assert.Equal(MilterVerdictKind.Continue, (await session.HeloAsync("h.example.org")).Kind);
        Assert.Equal(MilterVerdictKind.Continue, (await session.MailAsync("a@example.org", [])).Kind);
        var rcpt = session.RcptAsync("b@example.com", []);
        var seen = await m.ReadUntilAsync('R');
        Assert.Contains(seen, f => f.Command == 'C');
        Assert.Contains(seen, f => f.Command == 'H');
        Assert.Contains(seen, f => f.Command == 'M');
        await m.SendAsync('a');
        Assert.Equal(MilterVerdictKind.Accept, (await rcpt).Kind);
        // Accepted for this message: not asked again until the next.
        Assert.Equal(MilterVerdictKind.Accept, (await session.RcptAsync("c@example.com", [])).Kind);
        Assert.Equal(MilterVerdictKind.Accept, (await session.DataAsync("A: b\r\n\r\n"u8.ToArray(), new MemoryStream())).Verdict.Kind);
        var mail = session.MailAsync("d@example.org", []);
        Assert.Equal(['A', 'D', 'M'], (await m.ReadUntilAsync('M')).Select(f => f.Command).Distinct());
        Assert.Equal(MilterVerdictKind.Continue, (await mail).Kind);
    }

    [Fact]
    public async Task AMilterThatNeverAnswersTheEndOfMessageIsUnavailableAtTheContentTimeout()
    {
        await using var m = new ScriptedMilter();
        var milter = m.Milter();
        var session = await Connected(m, MilterActions.None, MilterSteps.NoHelo | MilterSteps.NoHeaders | MilterSteps.NoEndOfHeaders | MilterSteps.NoBody | MilterSteps.NoData, milter: milter);
        var mail = session.MailAsync("a@example.org", []);
        await m.ReadUntilAsync('M');
        await m.SendAsync('c');
        await mail;
        var data = session.DataAsync("A: b\r\n\r\n"u8.ToArray(), new MemoryStream());
        await m.ReadUntilAsync('E');
        m.Time.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromSeconds(1));
        Assert.False(data.IsCompleted);
        m.Time.Advance(TimeSpan.FromSeconds(1));
        var result = await data.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(MilterVerdictKind.Unavailable, result.Verdict.Kind);
        Assert.Equal("no answer to eom within 300 s", result.Verdict.Detail);
        Assert.True(await m.ClosedByClientAsync());
        // Later stages do not ask it again; the outage is logged once.
        Assert.Equal(MilterVerdictKind.Unavailable, (await session.MailAsync("b@example.org", [])).Kind);
        Assert.Single(m.Log.Lines, l => l.StartsWith("event=milter_unavailable", StringComparison.Ordinal));
        Assert.Contains("default_action=tempfail", m.Log.Lines.First(l => l.StartsWith("event=milter_unavailable", StringComparison.Ordinal)));

        // The next session is unaffected and the recovery is logged.
        await using var next = await Connected(m, MilterActions.None, MilterSteps.None, milter: milter);
        Assert.Contains(m.Log.Lines, l => l.StartsWith("event=milter_available", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ProgressStartsTheTimeoutAgain()
    {
        await using var m = new ScriptedMilter();
        var session = await Connected(m, MilterActions.None, MilterSteps.NoHelo, o => o.CommandTimeout = TimeSpan.FromSeconds(30));
        var mail = session.MailAsync("a@example.org", []);
        await m.ReadUntilAsync('M');
        m.Time.Advance(TimeSpan.FromSeconds(25));
        await m.SendAsync('p');
        await WaitUntil(() => session.ProgressReports == 1);
        // 35 s after the command, 10 s after the progress: within the 30 s it was given again.
        m.Time.Advance(TimeSpan.FromSeconds(10));
        Assert.False(mail.IsCompleted);
        await m.SendAsync('c');
        Assert.Equal(MilterVerdictKind.Continue, (await mail).Kind);
        // And without progress the 30 s hold: silence past them is the end.
        var rcpt = session.RcptAsync("b@example.com", []);
        await m.ReadUntilAsync('R');
        m.Time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(MilterVerdictKind.Unavailable, (await rcpt.WaitAsync(TimeSpan.FromSeconds(10))).Kind);
    }

    [Fact]
    public async Task AReplyFrameLargerThanTheLimitIsRefusedBeforeItIsRead()
    {
        await using var m = new ScriptedMilter();
        var session = await Connected(m, MilterActions.ChangeBody, MilterSteps.NoHelo | MilterSteps.NoData | MilterSteps.NoHeaders | MilterSteps.NoEndOfHeaders | MilterSteps.NoBody);
        var mail = session.MailAsync("a@example.org", []);
        await m.ReadUntilAsync('M');
        await m.SendAsync('c');
        await mail;
        var data = session.DataAsync(default, new MemoryStream(), new MemoryStream());
        await m.ReadUntilAsync('E');
        // 1 GiB announced, nothing sent: the client must not wait for it nor allocate it.
        await m.SendLengthOnlyAsync(1u << 30);
        var result = await data.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(MilterVerdictKind.Unavailable, result.Verdict.Kind);
        Assert.Contains("reply frame of 1073741824 bytes", result.Verdict.Detail);
    }

    [Fact]
    public async Task AReplacementBodyPastItsBoundMakesTheMilterUnavailable()
    {
        await using var m = new ScriptedMilter();
        var session = await Connected(m, MilterActions.ChangeBody, MilterSteps.NoHelo | MilterSteps.NoData | MilterSteps.NoHeaders | MilterSteps.NoEndOfHeaders | MilterSteps.NoBody);
        var mail = session.MailAsync("a@example.org", []);
        await m.ReadUntilAsync('M');
        await m.SendAsync('c');
        await mail;
        var sink = new MemoryStream();
        var data = session.DataAsync(default, new MemoryStream(), sink, maxReplacementBody: 100_000);
        await m.ReadUntilAsync('E');
        await m.SendAsync('b', new byte[65_535]);
        await m.SendAsync('b', new byte[65_535]);
        var result = await data.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(MilterVerdictKind.Unavailable, result.Verdict.Kind);
        Assert.Equal("eom: replacement body larger than 100000 octets", result.Verdict.Detail);
        Assert.True(sink.Length <= 100_000);
    }

    [Fact]
    public async Task AChangeTheMilterDidNotNegotiateIsAProtocolError()
    {
        await using var m = new ScriptedMilter();
        var session = await Connected(m, MilterActions.AddHeaders, MilterSteps.NoHelo | MilterSteps.NoData | MilterSteps.NoHeaders | MilterSteps.NoEndOfHeaders | MilterSteps.NoBody);
        var mail = session.MailAsync("a@example.org", []);
        await m.ReadUntilAsync('M');
        await m.SendAsync('c');
        await mail;
        var data = session.DataAsync(default, new MemoryStream());
        await m.ReadUntilAsync('E');
        await m.SendStringsAsync('+', "<extra@example.org>");
        var result = await data;
        Assert.Equal(MilterVerdictKind.Unavailable, result.Verdict.Kind);
        Assert.Contains("AddRecipient without having negotiated it", result.Verdict.Detail);
    }

    [Fact]
    public async Task AChangeBeforeTheEndOfMessageIsAProtocolError()
    {
        await using var m = new ScriptedMilter();
        var session = await Connected(m, MilterActions.All, MilterSteps.NoHelo);
        var mail = session.MailAsync("a@example.org", []);
        await m.ReadUntilAsync('M');
        await m.SendStringsAsync('h', "X-Early", "no");
        Assert.Equal(MilterVerdictKind.Unavailable, (await mail).Kind);
    }

    [Fact]
    public async Task AMilterAskingForANewerVersionOrUnknownActionsIsUnavailable()
    {
        await using var m = new ScriptedMilter();
        var session = m.Milter().OpenSession("s1");
        var connect = session.ConnectAsync(null, Client);
        await m.NegotiateAsync((MilterActions)0x400, MilterSteps.None);
        var verdict = await connect;
        Assert.Equal(MilterVerdictKind.Unavailable, verdict.Kind);
        Assert.Contains("actions 0x400", verdict.Detail);

        var second = m.Milter().OpenSession("s2");
        var c2 = second.ConnectAsync(null, Client);
        await m.NegotiateAsync(MilterActions.None, MilterSteps.None, version: 7);
        Assert.Contains("protocol version 7", (await c2).Detail);
    }

    [Fact]
    public async Task AVersion2MilterIsNeverSentDataOrNoReplyStages()
    {
        await using var m = new ScriptedMilter();
        var session = m.Milter().OpenSession("s1");
        var connect = session.ConnectAsync(null, Client);
        // A version-2 milter cannot have asked for no-reply steps; were they honoured, the client would not wait.
        await m.NegotiateAsync(MilterActions.AddHeaders, MilterSteps.NoReplyConnect | MilterSteps.NoHelo, version: 2);
        await m.ReadUntilAsync('C');
        Assert.False(connect.IsCompleted);
        await m.SendAsync('c');
        await connect;
        var mail = session.MailAsync("a@example.org", []);
        await m.ReadUntilAsync('M');
        await m.SendAsync('c');
        await mail;
        var data = session.DataAsync("A: b\r\n\r\n"u8.ToArray(), new MemoryStream());
        Assert.Equal('L', (await m.ReadAsync()).Command); // No 'T' first.
        await m.SendAsync('c');
        Assert.Equal('N', (await m.ReadAsync()).Command);
        await m.SendAsync('c');
        Assert.Equal('E', (await m.ReadUntilAsync('E'))[^1].Command);
        await m.SendAsync('c');
        Assert.Equal(MilterVerdictKind.Continue, (await data).Verdict.Kind);
    }

    [Fact]
    public async Task AMilterThatIsNotThereIsUnavailableAtOnce()
    {
        var dir = Directory.CreateTempSubdirectory("postern-milter-").FullName;
        try
        {
            var log = new ScriptedMilter.ListLogger();
            var milter = new Milter(new MilterOptions { Name = "gone", Address = "unix:" + Path.Combine(dir, "none.sock"), DefaultAction = MilterDefaultAction.Accept },
                TimeProvider.System, log);
            await using var session = milter.OpenSession("s1");
            var verdict = await session.ConnectAsync(null, Client).WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(MilterVerdictKind.Unavailable, verdict.Kind);
            Assert.StartsWith("connect: AddressNotAvailable", verdict.Detail);
            Assert.Equal(MilterDefaultAction.Accept, session.DefaultAction);
            Assert.True(milter.IsDown);
            Assert.Equal(MilterVerdictKind.Unavailable, (await session.HeloAsync("x")).Kind);
            Assert.Contains(log.Lines, l => l.StartsWith("event=milter_unavailable", StringComparison.Ordinal) && l.Contains("default_action=accept"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task ARejectAtConnectHoldsForTheWholeSession()
    {
        await using var m = new ScriptedMilter();
        var session = m.Milter().OpenSession("s1");
        var connect = session.ConnectAsync(null, Client);
        await m.NegotiateAsync(MilterActions.None, MilterSteps.None);
        await m.ReadUntilAsync('C');
        await m.SendAsync('r');
        Assert.Equal(MilterVerdict.DefaultReject, (await connect).Reply);
        Assert.Equal(MilterVerdictKind.Reject, (await session.HeloAsync("x")).Kind);
        Assert.Equal(MilterVerdictKind.Reject, (await session.MailAsync("a@example.org", [])).Kind);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = Environment.TickCount64 + 10_000;
        while (!condition() && Environment.TickCount64 < deadline)
        {
            await Task.Delay(10);
        }
    }
}
