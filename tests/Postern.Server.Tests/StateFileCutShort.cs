using System.Text;
using Postern.Server.Queue;

namespace Postern.Server.Tests;

/// <summary>A state file cut short anywhere reads as unreadable, never as "no state"; a whole one, as written by earlier versions too, reads back.</summary>
public sealed class StateFileCutShort
{
    // A state file as Postern wrote it before issue 12 (the format is unchanged; it must still read).
    private const string Written = """{"Recipients":[{"Address":"alice@example.test","Local":true,"Status":"delivered","Detail":"alice@example.test:1.M1","LastAttempt":"2026-12-07T10:00:00+00:00","Attempts":0,"Notified":true,"PeerHandlesDsn":false,"Warned":false},{"Address":"dave@dead.test","Local":false,"Status":"deferred","Detail":"connection refused","LastAttempt":"2026-12-07T10:00:01+00:00","NextAttempt":"2026-12-07T10:05:01+00:00","Attempts":1,"Notified":false,"PeerHandlesDsn":false,"Warned":false}]}""";

    [Fact]
    public async Task EveryPrefixIsUnreadableAndTheWholeFileReads()
    {
        var dir = Directory.CreateTempSubdirectory("postern-state-");
        try
        {
            await using var spool = new Spool(Path.Combine(dir.FullName, "queue"));
            var id = QueueId.New(DateTimeOffset.UtcNow);
            var bytes = Encoding.UTF8.GetBytes(Written);
            File.WriteAllBytes(spool.StatePath(id), bytes);
            var whole = spool.ReadState(id)!;
            Assert.Equal(["alice@example.test", "dave@dead.test"], whole.Recipients.Select(r => r.Address));
            Assert.Equal(RecipientStatus.Delivered, whole.Recipients[0].Status);
            for (var n = 0; n < bytes.Length; n++)
            {
                File.WriteAllBytes(spool.StatePath(id), bytes[..n]);
                Assert.Throws<InvalidDataException>(() => spool.ReadState(id));
            }
            // Zeros where the end should be (a crash on a file system that extended the file but lost its data).
            File.WriteAllBytes(spool.StatePath(id), [.. bytes[..(bytes.Length / 2)], .. new byte[bytes.Length / 2]]);
            Assert.Throws<InvalidDataException>(() => spool.ReadState(id));
            // A status nobody knows.
            File.WriteAllBytes(spool.StatePath(id), Encoding.UTF8.GetBytes(Written.Replace("\"deferred\"", "\"lost\"", StringComparison.Ordinal)));
            Assert.Throws<InvalidDataException>(() => spool.ReadState(id));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
