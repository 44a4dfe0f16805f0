using System.Buffers;

namespace Postern.Fuzz;

/// <summary>
/// The ways one input is split into the pieces a socket could deliver: whole, one octet at a time,
/// and pseudo-random pieces seeded from the input itself (so a crash replays exactly). A reader must
/// reach the same result however its input was split.
/// </summary>
public static class Chunking
{
    /// <summary>Byte-at-a-time splitting costs one call per octet: only for inputs up to this size.</summary>
    private const int ByteWiseLimit = 4096;

    /// <summary>Each splitting of <paramref name="input"/>, as the lengths of its pieces (none is empty unless the input is).</summary>
    public static IEnumerable<int[]> Of(ReadOnlySpan<byte> input)
    {
        var length = input.Length;
        var whole = new[] { length };
        var seed = Seed(input);
        var random = Random(length, seed);
        var splits = new List<int[]> { whole, random };
        if (length <= ByteWiseLimit)
        {
            splits.Add(Enumerable.Repeat(1, length).ToArray());
        }
        return splits;
    }

    /// <summary>Cuts <paramref name="input"/> into a sequence of several segments with the given piece lengths.</summary>
    public static ReadOnlySequence<byte> ToSequence(byte[] input, int[] pieces)
    {
        if (pieces.Length <= 1)
        {
            return new ReadOnlySequence<byte>(input);
        }
        Segment? first = null, last = null;
        var offset = 0;
        foreach (var n in pieces)
        {
            var segment = new Segment(input.AsMemory(offset, n));
            if (first is null)
            {
                first = last = segment;
            }
            else
            {
                last = last!.Append(segment);
            }
            offset += n;
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private static int[] Random(int length, uint seed)
    {
        var pieces = new List<int>();
        var state = seed | 1;
        var left = length;
        while (left > 0)
        {
            // xorshift32: small, deterministic, and good enough to vary piece sizes.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            var n = (int)Math.Min((uint)left, 1 + (state % 23));
            pieces.Add(n);
            left -= n;
        }
        return pieces.Count == 0 ? [0] : pieces.ToArray();
    }

    // FNV-1a.
    private static uint Seed(ReadOnlySpan<byte> input)
    {
        var h = 2166136261u;
        foreach (var b in input)
        {
            h = (h ^ b) * 16777619u;
        }
        return h;
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(Segment next)
        {
            next.RunningIndex = RunningIndex + Memory.Length;
            Next = next;
            return next;
        }
    }
}
