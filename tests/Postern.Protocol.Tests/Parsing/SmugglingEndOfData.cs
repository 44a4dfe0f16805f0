using System.Buffers;
using System.Text;
using Postern.Protocol.Parsing;

namespace Postern.Protocol.Tests.Parsing;

/// <summary>
/// SMTP smuggling (SPEC §5): each end-of-data variant that some server somewhere treats as the end
/// of DATA, followed by a second transaction. Postern must see one message or a refusal, never two:
/// the reader either stops with BareLineEnding (the session then refuses and closes) or reads on to
/// the one real CRLF.CRLF, with the "smuggled" part inside the single message.
/// </summary>
public sealed class SmugglingEndOfData
{
    public static TheoryData<string, string> Variants => new()
    {
        { "LF.LF", "\n.\n" },
        { "LF.CR", "\n.\r" },
        { "CR.LF", "\r.\n" },
        { "CR.CR", "\r.\r" },
        { "LF.CRLF", "\n.\r\n" },
        { "CR.CRLF", "\r.\r\n" },
        { "CRLF.LF", "\r\n.\n" },
        { "CRLF.CR", "\r\n.\r" },
        { "CRLF.CRCRLF", "\r\n.\r\r\n" },
        { "CRCRLF.CRLF", "\r\r\n.\r\n" },
        { "CRCRLF.CRCRLF", "\r\r\n.\r\r\n" },
        { "CRLF NUL.CRLF", "\r\n\x00.\r\n" },
        { "CRLF.NUL CRLF", "\r\n.\x00\r\n" },
        { "LFLF.LFLF", "\n\n.\n\n" },
    };

    private const string Smuggled = "MAIL FROM:<admin@example.com>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nFrom: admin@example.com\r\n\r\nsmuggled\r\n.\r\n";

    [Theory]
    [MemberData(nameof(Variants))]
    public void VariantNeverEndsTheMessage(string name, string variant)
    {
        var input = Encoding.Latin1.GetBytes("Subject: hi\r\n\r\nfirst" + variant + Smuggled);
        foreach (var split in new[] { 0, 1, 7, 20, 21, 22, 23 })
        {
            var (status, content, consumed, reader) = ReadAll(input, split);
            Assert.NotEqual(DataStatus.NeedMore, status);
            if (status == DataStatus.BareLineEnding)
            {
                // Refused before the smuggled commands: the session closes the connection here.
                // (the one octet that shows the CR or LF to be bare may be consumed too)
                Assert.True(consumed <= "Subject: hi\r\n\r\nfirst".Length + variant.Length + 1, $"{name}: read past the variant");
                continue;
            }
            // Only the NUL variants have no bare CR/LF: the whole thing is one message ending at the
            // last CRLF.CRLF, and it is refused for its NUL (554 5.6.0) - one refusal, never two messages.
            Assert.Equal(DataStatus.Complete, status);
            Assert.Equal(input.Length, consumed);
            Assert.True(reader.HasNul, name);
            Assert.DoesNotContain("smuggled", Encoding.Latin1.GetString(content));
        }
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void BdatChunkWithVariantIsOneMessageOrRefused(string name, string variant)
    {
        var chunk = Encoding.Latin1.GetBytes("Subject: hi\r\n\r\nfirst" + variant + Smuggled);
        var reader = new BdatReader(1_000_000);
        var ok = reader.Check(chunk) && reader.CheckEnd();
        var hasBare = variant.Replace("\r\n", "", StringComparison.Ordinal).Contains('\n') || variant.Replace("\r\n", "", StringComparison.Ordinal).Contains('\r');
        Assert.Equal(!hasBare, ok || !reader.HasBareLineEnding);
        Assert.Equal(hasBare, reader.HasBareLineEnding);
        _ = name;
    }

    internal static (DataStatus, byte[], long, DataReader) ReadAll(byte[] input, int split, long maxSize = 1_000_000)
    {
        var reader = new DataReader(maxSize);
        var output = new ArrayBufferWriter<byte>();
        long consumed = 0;
        // Feed in two pieces to exercise state carried across reads, and as a two-segment sequence.
        var pieces = split <= 0 || split >= input.Length ? [input] : new[] { input[..split], input[split..] };
        var status = DataStatus.NeedMore;
        foreach (var piece in pieces)
        {
            var seq = new ReadOnlySequence<byte>(piece);
            status = reader.Read(seq, output, out var pos);
            consumed += seq.Slice(0, pos).Length;
            if (status != DataStatus.NeedMore)
            {
                break;
            }
        }
        return (status, output.WrittenSpan.ToArray(), consumed, reader);
    }
}
