using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Postern.Fuzz;

/// <summary>
/// A blind, in-process mutation loop for when afl-fuzz is not at hand: starts from the corpus files,
/// applies a few random edits (bit flips, SMTP tokens, cuts, splices) and runs the target, for a fixed
/// time. It has no coverage feedback, so it finds less than AFL, but it needs nothing installed.
/// A failing input is written to fuzz-crashes/TARGET/ and the run exits 1.
/// </summary>
public static class Mutator
{
    /// <summary>The octets and words the parsers branch on.</summary>
    private static readonly byte[][] Tokens = new[]
    {
        "\r\n", "\r", "\n", ".", "\r\n.\r\n", "\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\0", " ", "\t", "<", ">", "@", "\"", "\\", ":", ",", ";", "=", "+",
        "[", "]", "IPv6:", "::", "MAIL FROM:", "RCPT TO:", "EHLO ", "BDAT ", " LAST", "DATA", "AUTH PLAIN ", "SIZE=", "BODY=8BITMIME", "SMTPUTF8",
        "NOTIFY=", "ORCPT=rfc822;", "ENVID=", "RET=HDRS", "<postmaster>", "*", "=", "AGFsaWNlAHNlY3JldA==", "\u00e9", "\u4e2d", "\U0001F600", "\xff",
    }.Select(t => t == "\xff" ? [0xff] : Encoding.UTF8.GetBytes(t)).ToArray();

    public static int Run(string name, FuzzTarget target, TimeSpan duration, string[] corpusDirs)
    {
        var corpus = corpusDirs.Where(Directory.Exists)
            .SelectMany(d => Directory.GetFiles(d, "*", SearchOption.AllDirectories))
            .Order(StringComparer.Ordinal)
            .Select(File.ReadAllBytes)
            .ToList();
        if (corpus.Count == 0)
        {
            corpus.Add([]);
        }
        var seed = Environment.GetEnvironmentVariable("POSTERN_FUZZ_SEED") is { } s ? int.Parse(s, CultureInfo.InvariantCulture) : Random.Shared.Next();
        var random = new Random(seed);
        var clock = Stopwatch.StartNew();
        long runs = 0;
        while (clock.Elapsed < duration)
        {
            var input = Mutate(corpus[random.Next(corpus.Count)], corpus, random);
            runs++;
            try
            {
                target(input);
            }
            catch (Exception e)
            {
                var dir = Path.Combine("fuzz-crashes", name);
                Directory.CreateDirectory(dir);
                var file = Path.Combine(dir, Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(input))[..16].ToLowerInvariant());
                File.WriteAllBytes(file, input);
                Console.WriteLine($"{name}: CRASH after {runs} runs (seed {seed}), input saved as {file}, base64 {Convert.ToBase64String(input)}:\n{e}");
                return 1;
            }
        }
        Console.WriteLine($"{name}: {runs} runs in {clock.Elapsed.TotalSeconds:F0} s from {corpus.Count} seeds (seed {seed}), no crash");
        return 0;
    }

    private static byte[] Mutate(byte[] start, List<byte[]> corpus, Random random)
    {
        var data = new List<byte>(start);
        var edits = 1 + random.Next(8);
        for (var e = 0; e < edits; e++)
        {
            var at = random.Next(data.Count + 1);
            switch (random.Next(7))
            {
                case 0 when data.Count > 0:
                    var i = random.Next(data.Count);
                    data[i] ^= (byte)(1 << random.Next(8));
                    break;
                case 1 when data.Count > 0:
                    data[random.Next(data.Count)] = (byte)random.Next(256);
                    break;
                case 2:
                case 3:
                    data.InsertRange(at, Tokens[random.Next(Tokens.Length)]);
                    break;
                case 4 when data.Count > 0:
                    var cut = random.Next(data.Count);
                    data.RemoveRange(cut, Math.Min(data.Count - cut, 1 + random.Next(16)));
                    break;
                case 5 when data.Count > 0:
                    // Repeat a run: long lines, many dots, many parameters.
                    var from = random.Next(data.Count);
                    var run = data.GetRange(from, Math.Min(data.Count - from, 1 + random.Next(32)));
                    for (var r = random.Next(1, 40); r > 0; r--)
                    {
                        data.InsertRange(at, run);
                    }
                    break;
                default:
                    var other = corpus[random.Next(corpus.Count)];
                    if (other.Length > 0)
                    {
                        var o = random.Next(other.Length);
                        data.InsertRange(at, other.AsSpan(o, Math.Min(other.Length - o, 1 + random.Next(64))).ToArray());
                    }
                    break;
            }
        }
        return data.Count > 16384 ? data.GetRange(0, 16384).ToArray() : data.ToArray();
    }
}
