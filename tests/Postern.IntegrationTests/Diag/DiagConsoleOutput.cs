using Postern.Diagnostics;
using Spectre.Console;

namespace Postern.IntegrationTests.Diag;

/// <summary>The text form of a report: colours only on a terminal, and no terminal control from what servers say.</summary>
public sealed class DiagConsoleOutput
{
    private static readonly DiagStep Failed = new("tcp.25", "port 25", DiagStatus.Fail, "TCP connect to 192.0.2.1:25",
        "no answer within 5 s\u001b]0;owned\u0007\u001b[2J", "port_timeout", "a firewall drops the packets", "open port 25");

    [Fact]
    public void OnATerminalTheMarksAreColoured()
    {
        var output = new StringWriter();
        new DiagConsole(output, terminal: true, ColorSystemSupport.Standard).Show(Failed);
        Assert.Contains("\u001b[", output.ToString());
        Assert.Contains("FAIL", output.ToString());
    }

    [Fact]
    public void PipedTheSameTextComesPlain()
    {
        var output = new StringWriter();
        new DiagConsole(output, terminal: false).Show(Failed);
        var text = output.ToString();
        Assert.StartsWith("FAIL  port 25 (tcp.25)\n      tried: TCP connect to 192.0.2.1:25\n", text.Replace("\r\n", "\n", StringComparison.Ordinal));
        Assert.Contains("cause: a firewall drops the packets", text);
        Assert.Contains("fix:   open port 25", text);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ControlCharactersFromAServerAreShownNotObeyed(bool terminal)
    {
        var output = new StringWriter();
        new DiagConsole(output, terminal, terminal ? ColorSystemSupport.Standard : ColorSystemSupport.NoColors).Show(Failed);
        var text = output.ToString();
        Assert.Contains(@"no answer within 5 s\x1b]0;owned\x07\x1b[2J", text);
        Assert.DoesNotContain("\u0007", text);
        Assert.DoesNotContain("\u001b]", text);
        Assert.DoesNotContain("\u001b[2J", text);
    }
}
