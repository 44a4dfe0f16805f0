using Postern.Protocol.Parsing;

namespace Postern.Fuzz;

/// <summary>
/// BDAT content through <see cref="BdatReader"/>, each piece being one read of one chunk (RFC 3030):
/// the verdict on bare CR and LF, the size, NUL and line flags must not depend on where the chunks
/// were cut, must match a plain model, and no piece at or after a bare line ending is ever kept.
/// </summary>
public static class BdatTarget
{
    private static readonly (long MaxSize, int MaxLine)[] Limits = [(1 << 20, 1000), (64, 16)];

    public static void Run(ReadOnlySpan<byte> input)
    {
        var bytes = input.ToArray();
        foreach (var (maxSize, maxLine) in Limits)
        {
            var model = Model.Of(bytes, maxLine);
            foreach (var pieces in Chunking.Of(input))
            {
                Check(model, bytes, maxSize, pieces, new BdatReader(maxSize, maxLine));
            }
        }
    }

    private static void Check(Model model, byte[] input, long maxSize, int[] pieces, BdatReader reader)
    {
        // As the session does: a piece is written to the spool only when Check says it may be kept.
        var kept = new List<byte>();
        var offset = 0;
        foreach (var n in pieces)
        {
            var piece = input.AsSpan(offset, n);
            var keep = reader.Check(piece);
            Expect.That(keep == !reader.Discarding, "Check's answer differs from Discarding");
            if (keep)
            {
                Expect.That(kept.Count == offset, "a piece was kept after one was dropped");
                kept.AddRange(piece);
            }
            offset += n;
        }
        reader.CheckEnd();
        Expect.That(reader.HasBareLineEnding == model.FirstBare.HasValue, $"bare line ending {reader.HasBareLineEnding}, the model says {model.FirstBare}");
        Expect.That(reader.Size == input.Length, "Size is not the number of octets checked");
        if (model.FirstBare is { } bare)
        {
            Expect.That(kept.Count <= bare, "content at or past a bare line ending was kept");
            return;
        }
        Expect.That(reader.HasNul == model.HasNul, "HasNul differs from the model");
        Expect.That(reader.LineTooLong == model.LineTooLong, "LineTooLong differs from the model");
        Expect.That(reader.TooBig == (input.Length > maxSize), "TooBig differs from the model");
        if (!reader.Discarding)
        {
            Expect.That(kept.Count == input.Length, "content was dropped although nothing was wrong with it");
        }
    }

    /// <summary>The content rules of SPEC §5 on the whole content at once.</summary>
    private sealed record Model(int? FirstBare, bool HasNul, bool LineTooLong)
    {
        public static Model Of(byte[] input, int maxLine)
        {
            int? firstBare = null;
            var longest = 0;
            var length = 0;
            for (var i = 0; i < input.Length && firstBare is null; i++)
            {
                var b = input[i];
                if (b == '\n' && (i == 0 || input[i - 1] != '\r'))
                {
                    firstBare = i; // an LF without its CR
                }
                else if (b == '\r' && (i + 1 == input.Length || input[i + 1] != '\n'))
                {
                    firstBare = i + 1; // a CR without its LF: seen at the next octet, or at BDAT LAST
                }
                length++;
                if (b == '\n')
                {
                    longest = Math.Max(longest, length);
                    length = 0;
                }
            }
            longest = Math.Max(longest, length);
            return new Model(firstBare, input.Contains((byte)0), longest > maxLine);
        }
    }
}
