using Postern.Server.Queue;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>Puts a message straight into a fresh spool, as the server would have after a 250.</summary>
public static class Spooled
{
    public static async Task<SpooledMessage> MessageAsync(byte[] content, string from, IEnumerable<string> to, string? notify = null)
    {
        var dir = TestServer.NewDataDir();
        await using var spool = new Spool(Path.Combine(dir, "queue"));
        var id = QueueId.New(DateTimeOffset.UtcNow);
        using var w = spool.Create(new Envelope
        {
            Id = id.Value,
            Received = DateTimeOffset.UtcNow,
            From = from,
            Body = "8BITMIME",
            Recipients = to.Select(t => new EnvelopeRecipient { Address = t, Notify = notify }).ToList(),
        });
        System.Buffers.BuffersExtensions.Write(w, content);
        await w.CommitAsync();
        return spool.Read(id);
    }
}
