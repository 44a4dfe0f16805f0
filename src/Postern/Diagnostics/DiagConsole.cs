using Spectre.Console;

namespace Postern.Diagnostics;

/// <summary>
/// The terminal form of a report, through Spectre.Console: one block per step with its mark (PASS,
/// INFO, WARN, FAIL), what was tried and seen, and for a problem the cause and the fix; a spinner
/// naming the wait while a step is on the network. Colours and the spinner only on a terminal: piped
/// into a file or another program, the same text comes plain.
/// </summary>
public sealed class DiagConsole : IDiagProgress
{
    private readonly IAnsiConsole _console;
    private StatusContext? _status;

    public DiagConsole(TextWriter output, bool terminal)
        : this(output, terminal, terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors)
    {
    }

    /// <summary>With the colours given (a test can ask for them without a terminal).</summary>
    public DiagConsole(TextWriter output, bool terminal, ColorSystemSupport colours)
    {
        _console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = terminal ? AnsiSupport.Yes : AnsiSupport.No,
            ColorSystem = colours,
            Interactive = terminal ? InteractionSupport.Detect : InteractionSupport.No,
        });
        if (!terminal)
        {
            // No terminal to wrap for: a line is a line, whatever its length.
            _console.Profile.Width = 4096;
        }
        Terminal = terminal;
    }

    /// <summary>True when writing to a terminal (colours, spinner).</summary>
    public bool Terminal { get; }

    /// <summary>Runs <paramref name="work"/> under a spinner on a terminal; plainly otherwise.</summary>
    public async Task RunAsync(string title, Func<Task> work)
    {
        _console.MarkupLineInterpolated($"[bold]{title}[/]");
        if (!Terminal)
        {
            await work().ConfigureAwait(false);
            return;
        }
        await _console.Status().Spinner(Spinner.Known.Dots).StartAsync("starting", async ctx =>
        {
            _status = ctx;
            try
            {
                await work().ConfigureAwait(false);
            }
            finally
            {
                _status = null;
            }
        }).ConfigureAwait(false);
    }

    public void Show(DiagStep step)
    {
        var (mark, colour) = step.Status switch
        {
            DiagStatus.Pass => ("PASS", "green"),
            DiagStatus.Info => ("INFO", "blue"),
            DiagStatus.Warn => ("WARN", "yellow"),
            _ => ("FAIL", "red"),
        };
        lock (_console)
        {
            _console.MarkupLineInterpolated($"[{colour} bold]{mark}[/]  {Safe(step.Title)} [grey]({Safe(step.Id)})[/]");
            _console.MarkupLineInterpolated($"      [grey]tried:[/] {Safe(step.Tried)}");
            _console.MarkupLineInterpolated($"      [grey]saw:[/]   {Safe(step.Saw)}");
            if (step.Cause is not null)
            {
                _console.MarkupLineInterpolated($"      [{colour}]cause:[/] {Safe(step.Cause)}");
            }
            if (step.Fix is not null)
            {
                _console.MarkupLineInterpolated($"      [{colour}]fix:[/]   {Safe(step.Fix)}");
            }
        }
    }

    /// <summary>
    /// Control characters as \xNN: what a remote server or a DNS record says reaches the terminal,
    /// and an escape sequence in it must not move the cursor, rewrite lines or set the title.
    /// </summary>
    internal static string Safe(string text)
    {
        if (!text.Any(IsControl))
        {
            return text;
        }
        var sb = new System.Text.StringBuilder(text.Length + 16);
        foreach (var c in text)
        {
            sb.Append(IsControl(c) ? $"\\x{(int)c:x2}" : c);
        }
        return sb.ToString();
    }

    private static bool IsControl(char c) => c < ' ' || c is >= '\x7f' and <= '\x9f';

    public IDisposable Waiting(string what)
    {
        _status?.Status(Markup.Escape(what));
        return new Done(this);
    }

    /// <summary>The closing line: how many steps passed, warned and failed.</summary>
    public void Summary(DiagReport report)
    {
        var fail = report.Steps.Count(s => s.Status == DiagStatus.Fail);
        var warn = report.Steps.Count(s => s.Status == DiagStatus.Warn);
        var pass = report.Steps.Count(s => s.Status == DiagStatus.Pass);
        var colour = fail > 0 ? "red" : warn > 0 ? "yellow" : "green";
        var verdict = fail > 0 ? "problems found" : warn > 0 ? "works, with warnings" : "all good";
        _console.WriteLine();
        _console.MarkupLineInterpolated($"[{colour} bold]{verdict}[/]: {pass} passed, {warn} {(warn == 1 ? "warning" : "warnings")}, {fail} failed");
    }

    private sealed class Done(DiagConsole owner) : IDisposable
    {
        public void Dispose() => owner._status?.Status("working");
    }
}

/// <summary>Shows nothing: <c>--json</c> prints the report once, at the end.</summary>
public sealed class SilentProgress : IDiagProgress
{
    public static SilentProgress Instance { get; } = new();

    public void Show(DiagStep step)
    {
    }

    public IDisposable Waiting(string what) => Nothing.Instance;

    private sealed class Nothing : IDisposable
    {
        public static Nothing Instance { get; } = new();

        public void Dispose()
        {
        }
    }
}
