using Postern.Server.Queue;

namespace Postern.IntegrationTests.Infrastructure;

/// <summary>Puts a message straight into a fresh spool, as the server would have after a 250.</summary>
public static class Spooled
{
    /// <summary>
    /// Puts <paramref name="count"/> messages into the spool of <paramref name="dataDir"/> before a
    /// server starts on it (a backlog, as after an outage). Each envelope gets its id and time here.
    /// </summary>
    public static async Task IntoAsync(string dataDir, int count, Func<int, (Envelope Envelope, string Content)> make)
    {
        await using var spool = new Spool(Path.Combine(dataDir, "queue"));
        for (var i = 0; i < count; i++)
        {
            var (envelope, content) = make(i);
            envelope.Id = QueueId.New(DateTimeOffset.UtcNow).Value;
            envelope.Received = DateTimeOffset.UtcNow;
            using var w = spool.Create(envelope);
            w.WriteText(content);
            await w.CommitAsync();
        }
    }

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
