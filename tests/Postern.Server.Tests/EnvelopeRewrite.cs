using System.Text;
using Postern.Server.Queue;

namespace Postern.Server.Tests;

/// <summary>The envelope can be written again before the commit, in the room left after it or, when it outgrows the room, by writing the file again, whatever the message size.</summary>
public sealed class EnvelopeRewrite
{
    [Theory]
    [InlineData(100)]      // still in the writer's buffer
    [InlineData(100_000)]  // the envelope already in the file
    public async Task ALaterEnvelopeReplacesTheFirstAndTheMessageIsUntouched(int size)
    {
        var dir = Directory.CreateTempSubdirectory("postern-spool-");
        try
        {
            await using var spool = new Spool(Path.Combine(dir.FullName, "queue"));
            var id = QueueId.New(DateTimeOffset.UtcNow);
            var envelope = new Envelope { Id = id.Value, From = "a@example.org", Recipients = [new EnvelopeRecipient { Address = "b@example.com", Local = true }] };
            var content = Encoding.ASCII.GetBytes("Subject: room\r\n\r\n" + new string('x', size) + "\r\n");
            using (var w = spool.Create(envelope, room: 512))
            {
                System.Buffers.BuffersExtensions.Write(w, content);
                envelope.Helo = "filled.in.later.example";
                w.RewriteEnvelope(envelope);
                Assert.Equal(w.Length - content.Length, w.MessageStart);
                // Too big for the room (issue 12: it used to be dropped silently): the file is written again.
                envelope.Helo = new string('h', 6000);
                w.RewriteEnvelope(envelope);
                Assert.Null(w.Failure);
                Assert.Equal(w.Length - content.Length, w.MessageStart);
                await w.CommitAsync();
            }
            var read = spool.Read(id);
            Assert.Equal(new string('h', 6000), read.Envelope.Helo);
            Assert.Empty(Directory.GetFiles(spool.TmpDir));
            Assert.Equal(content.Length, read.MessageLength);
            using var s = Spool.OpenMessage(read);
            var back = new byte[content.Length];
            s.ReadExactly(back);
            Assert.Equal(content, back);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
