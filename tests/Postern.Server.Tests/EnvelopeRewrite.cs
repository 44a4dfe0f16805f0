using System.Text;
using Postern.Server.Queue;

namespace Postern.Server.Tests;

/// <summary>The envelope can be written again before the commit, in the room left after it, whatever the message size.</summary>
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
                Assert.True(w.RewriteEnvelope(envelope));
                envelope.Helo = new string('h', 2000);
                Assert.False(w.RewriteEnvelope(envelope)); // too big for the room: the last one that fitted stands
                await w.CommitAsync();
            }
            var read = spool.Read(id);
            Assert.Equal("filled.in.later.example", read.Envelope.Helo);
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
