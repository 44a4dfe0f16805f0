using System.Buffers;
using System.Text;
using CsCheck;
using Postern.Fuzz;
using Postern.Protocol.Commands;
using Postern.Protocol.Parsing;

namespace Postern.Protocol.Tests.Properties;

/// <summary>
/// Property tests (CsCheck): random byte streams, biased towards the octets and words SMTP parsers
/// branch on, through every parser. Each must answer with one of its documented results and never
/// throw; the fuzz targets then check their stronger invariants (a model of the dot rules, the same
/// result however the input is split, commands that parse back to themselves). CsCheck shrinks a
/// failure to a small input and prints the seed that replays it.
/// </summary>
public sealed class RandomBytesThroughTheParsers
{
    private const int Iterations = 4000;

    private static readonly string[] Tokens =
    [
        "\r\n", "\r", "\n", ".", "\r\n.\r\n", "\n.\n", "\r.\n", "\n.\r\n", "\0", " ", "<", ">", "@", "\"", "\\", ":", "=", "[", "]",
        "MAIL FROM:", "RCPT TO:", "EHLO x", "BDAT 3", " LAST", "DATA", "AUTH PLAIN ", "SIZE=9", "SMTPUTF8", "NOTIFY=NEVER",
        "<a@b.example>", "<postmaster>", "[IPv6:::1]", "\u00e9", "AGFsaWNlAHNlY3JldA==", "*",
    ];

    /// <summary>Streams of random octets and SMTP tokens, up to a few kilobytes.</summary>
    private static readonly Gen<byte[]> Streams =
        Gen.Frequency(
                (2, Gen.Byte.Array[0, 24]),
                (3, Gen.OneOf(Tokens).Select(t => Encoding.UTF8.GetBytes(t))))
            .Array[0, 80]
            .Select(parts => parts.SelectMany(p => p).ToArray());

    [Fact]
    public void LineReaderAndCommandParserAnswerWithTheirResults() =>
        Streams.Sample(bytes =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
            while (!reader.End)
            {
                var status = LineReader.TryRead(ref reader, CommandTarget.CommandLineLimit, out var line);
                Assert.True(Enum.IsDefined(status));
                if (status == LineStatus.Incomplete)
                {
                    break;
                }
                if (status == LineStatus.TooLong)
                {
                    LineReader.SkipPastLineFeed(ref reader);
                }
                if (status == LineStatus.Line)
                {
                    Assert.NotNull(CommandParser.Parse(line, "example.test"));
                }
            }
            CommandTarget.Run(bytes);
        }, iter: Iterations);

    [Fact]
    public void DataReaderAnswersWithItsResults() =>
        Streams.Sample(bytes =>
        {
            var status = new DataReader(1 << 20).Read(new ReadOnlySequence<byte>(bytes), new ArrayBufferWriter<byte>(), out _);
            Assert.True(Enum.IsDefined(status));
            DataTarget.Run(bytes);
        }, iter: Iterations);

    [Fact]
    public void BdatReaderAnswersWithItsResults() =>
        Streams.Sample(bytes => BdatTarget.Run(bytes), iter: Iterations);

    [Fact]
    public void AddressParserAnswersWithItsResults() =>
        Streams.Sample(bytes => AddressTarget.Run(bytes), iter: Iterations);

    [Fact]
    public void AuthDecoderAnswersWithItsResults() =>
        Streams.Sample(bytes =>
        {
            Assert.True(Enum.IsDefined(AuthDecoder.DecodeLine(Encoding.ASCII.GetString(bytes), out _)));
            AuthTarget.Run(bytes);
        }, iter: Iterations);
}
