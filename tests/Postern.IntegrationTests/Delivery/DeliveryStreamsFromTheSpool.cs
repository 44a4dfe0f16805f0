using System.Net;
using System.Text;
using Postern.IntegrationTests.Infrastructure;
using Postern.MailAuth.Dkim;
using Postern.Server.Delivery;

namespace Postern.IntegrationTests.Delivery;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AllocationCounts
{
    /// <summary>Tests that count the process's allocations run alone.</summary>
    public const string Name = "allocation counts";
}

/// <summary>
/// Issue 12: delivery streams the message from the spool file, DKIM-signed on the way, and never
/// holds it whole (on main, 20 submitted messages of 20 MiB held +341 MiB). The bound is on the
/// bytes the whole process allocates while a 32 MiB message is signed, sent to a Postern peer over
/// STARTTLS and stored there: less than the message itself, which any copy of it would take.
/// The class runs alone (<see cref="AllocationCounts"/>), so the count is this test's.
/// </summary>
[Collection(AllocationCounts.Name)]
public sealed class DeliveryStreamsFromTheSpool
{
    private const int Size = 32 << 20;

    [Fact]
    public async Task ASignedBigMessageIsSentWithoutACopyInMemory()
    {
        await using var peer = await TestServer.StartAsync(o => o.Limits.MaxMessageSize = Size + (1 << 20));
        var head = "From: Sender <sender@origin.example>\r\nTo: alice@example.test\r\nSubject: big\r\n" +
            "Message-ID: <big-1@origin.example>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n";
        var line = Encoding.ASCII.GetBytes(new string('x', 76) + "\r\n");
        var content = new byte[head.Length + Size / line.Length * line.Length];
        Encoding.ASCII.GetBytes(head).CopyTo(content, 0);
        for (var at = head.Length; at < content.Length; at += line.Length)
        {
            line.CopyTo(content, at);
        }
        var spooled = await Spooled.MessageAsync(content, "sender@origin.example", ["alice@example.test"]);
        spooled.Envelope.AuthUser = "sender@origin.example"; // submitted by a local user: signed
        var key = DkimSigningKey.Generate("origin.example", "big", DkimKeyType.Ed25519).Key;
        var client = new SmtpDeliveryClient("out.origin.example", TimeProvider.System, TimeSpan.FromSeconds(60), new DkimSigner(DkimKeyStore.From([key]), TimeProvider.System));
        content = null;
        GC.Collect();

        var before = GC.GetTotalAllocatedBytes(precise: true);
        var outcomes = await client.DeliverAsync(spooled, ["alice@example.test"], IPAddress.Loopback, peer.MxPort);
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;

        Assert.IsType<DeliveryOutcome.Delivered>(outcomes[0].Outcome);
        var received = (await peer.WaitForDeliveryAsync("alice@example.test"))[0];
        Assert.Contains("DKIM-Signature: v=1; a=ed25519-sha256;", Encoding.ASCII.GetString(received, 0, 4096));
        Assert.True(received.Length > Size, $"{received.Length} octets arrived");
        Assert.True(allocated < Size, $"sending a {Size}-octet message allocated {allocated} bytes");
    }
}
