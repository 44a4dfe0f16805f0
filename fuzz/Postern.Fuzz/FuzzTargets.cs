namespace Postern.Fuzz;

/// <summary>One fuzz target: throws (an <see cref="InvariantBrokenException"/> or anything else) on a bug.</summary>
public delegate void FuzzTarget(ReadOnlySpan<byte> input);

/// <summary>
/// The targets by name, the name being the first argument of the program and the folder of the
/// target's corpus (fuzz/corpus/NAME) and regressions (fuzz/regressions/NAME).
/// </summary>
public static class FuzzTargets
{
    public static IReadOnlyDictionary<string, FuzzTarget> All { get; } = new SortedDictionary<string, FuzzTarget>(StringComparer.Ordinal)
    {
        ["address"] = AddressTarget.Run,
        ["auth"] = AuthTarget.Run,
        ["bdat"] = BdatTarget.Run,
        ["command"] = CommandTarget.Run,
        ["data"] = DataTarget.Run,
    };
}

/// <summary>A target's invariant does not hold: a bug, reported to the fuzzer as a crash.</summary>
public sealed class InvariantBrokenException(string message) : Exception(message);

/// <summary>Checks an invariant: cheap, and with a message that says which one broke.</summary>
public static class Expect
{
    public static void That(bool condition, string invariant)
    {
        if (!condition)
        {
            throw new InvariantBrokenException(invariant);
        }
    }
}
