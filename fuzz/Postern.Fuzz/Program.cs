using System.Diagnostics;
using System.Globalization;
using Postern.Fuzz;
using SharpFuzz;

// Postern.Fuzz TARGET                        under afl-fuzz (SharpFuzz's fork server; reads the input from stdin)
// Postern.Fuzz TARGET --libfuzzer            under libfuzzer-dotnet
// Postern.Fuzz TARGET --replay PATH...       runs each file (or each file in each folder) once; exit 1 on any failure
// Postern.Fuzz TARGET --mutate SECONDS DIR...  mutates the files of DIR at random in-process for SECONDS (no coverage feedback)
// Postern.Fuzz --list                        the target names
if (args.Length == 1 && args[0] == "--list")
{
    Console.WriteLine(string.Join('\n', FuzzTargets.All.Keys));
    return 0;
}
if (args.Length == 0 || !FuzzTargets.All.TryGetValue(args[0], out var target))
{
    Console.Error.WriteLine($"usage: Postern.Fuzz TARGET [--libfuzzer | --replay PATH... | --mutate SECONDS DIR...]; targets: {string.Join(", ", FuzzTargets.All.Keys)}");
    return 2;
}
switch (args.Length > 1 ? args[1] : null)
{
    case null:
        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var memory = new MemoryStream();
            stream.CopyTo(memory);
            target(memory.GetBuffer().AsSpan(0, (int)memory.Length));
        });
        return 0;
    case "--libfuzzer":
        Fuzzer.LibFuzzer.Run(span => target(span));
        return 0;
    case "--replay":
        return Replay(target, args[2..]);
    case "--mutate" when args.Length > 3 && int.TryParse(args[2], NumberStyles.None, CultureInfo.InvariantCulture, out var seconds):
        return Mutator.Run(args[0], target, TimeSpan.FromSeconds(seconds), args[3..]);
    default:
        Console.Error.WriteLine($"unknown mode {args[1]}");
        return 2;
}

static int Replay(FuzzTarget target, string[] paths)
{
    var failures = 0;
    // A folder that does not exist is an empty one: not every target has regressions.
    var files = paths.SelectMany(p => Directory.Exists(p) ? Directory.GetFiles(p, "*", SearchOption.AllDirectories) : File.Exists(p) ? [p] : [])
        .Order(StringComparer.Ordinal).ToList();
    foreach (var file in files)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            target(File.ReadAllBytes(file));
        }
        catch (Exception e)
        {
            failures++;
            Console.WriteLine($"FAIL {file}: {e}");
            continue;
        }
        // A parser that takes this long on a small input is a hang, not a slow machine.
        if (clock.Elapsed > TimeSpan.FromSeconds(2))
        {
            failures++;
            Console.WriteLine($"SLOW {file}: {clock.Elapsed.TotalSeconds:F1} s");
        }
    }
    Console.WriteLine($"replayed {files.Count} files, {failures} failed");
    return failures == 0 ? 0 : 1;
}
