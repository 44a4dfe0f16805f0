using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Postern.Server.Configuration;
using Postern.Server.Logging;

namespace Postern.Server.Tests;

/// <summary>Logging.Level: events below it are not written, and a running provider takes a new level at once.</summary>
public sealed partial class LogLevelFilter
{
    private static void OneOfEach(ILogger l)
    {
        Log.Connect(l, "s1", "mx", "192.0.2.7", 1); // information
        Log.TlsFailed(l, "s1", "192.0.2.7", "handshake"); // warning
        Log.QueueCorrupt(l, "Q1", "f", "bad"); // error
        l.LogDebug("a library's chatter");
    }

    private static List<string> Events(List<string> lines) =>
        lines.Where(l => l.Length > 0).Select(l => EventPattern().Match(l).Groups[1].Value).ToList();

    [GeneratedRegex(@"event=(\S+)")]
    private static partial Regex EventPattern();

    [Theory]
    [InlineData(LogLevel.Trace, "connect,tls_failed,queue_corrupt,0")]
    [InlineData(LogLevel.Debug, "connect,tls_failed,queue_corrupt,0")]
    [InlineData(LogLevel.Information, "connect,tls_failed,queue_corrupt")]
    [InlineData(LogLevel.Warning, "tls_failed,queue_corrupt")]
    [InlineData(LogLevel.Error, "queue_corrupt")]
    [InlineData(LogLevel.Critical, "")]
    public void OnlyEventsAtOrAboveTheLevelAreWritten(LogLevel level, string expected)
    {
        var output = new StringWriter();
        using (var provider = new KeyValueLoggerProvider(output, level))
        {
            OneOfEach(provider.CreateLogger("t"));
        }
        Assert.Equal(expected, string.Join(",", Events(output.ToString().Split('\n').ToList())));
    }

    [Fact]
    public void NoneWritesNothingAndIsEnabledSaysSo()
    {
        var output = new StringWriter();
        using (var provider = new KeyValueLoggerProvider(output, LogLevel.None))
        {
            var logger = provider.CreateLogger("t");
            Assert.False(logger.IsEnabled(LogLevel.Critical));
            Assert.False(logger.IsEnabled(LogLevel.None));
            OneOfEach(logger);
            Log.Stopping(logger, "test");
        }
        Assert.Equal("", output.ToString());
    }

    [Fact]
    public void TheLevelChangesWhileRunningForLoggersAlreadyMade()
    {
        var lines = JsonLogLines.Lines(l => Log.Connect(l, "before", "mx", "192.0.2.7", 1), LogFormat.KeyValue, LogLevel.Warning, between: p =>
        {
            var logger = p.CreateLogger("t");
            Assert.False(logger.IsEnabled(LogLevel.Information));
            p.MinimumLevel = LogLevel.Debug;
            Assert.Equal(LogLevel.Debug, p.MinimumLevel);
            Assert.True(logger.IsEnabled(LogLevel.Debug));
            Log.Connect(logger, "after", "mx", "192.0.2.7", 1);
            p.MinimumLevel = LogLevel.Error;
            Log.Connect(logger, "after-error", "mx", "192.0.2.7", 1);
        });
        Assert.Equal(["after"], lines.Select(l => Regex.Match(l, "session=(\\S+)").Groups[1].Value));
    }

    [Fact]
    public async Task SettingTheLevelFromAnotherThreadWhileSessionsLogIsSafe()
    {
        var output = new StringWriter();
        using var provider = new KeyValueLoggerProvider(TextWriter.Synchronized(output), LogLevel.Information);
        var logger = provider.CreateLogger("t");
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 4).Select(i => Task.Run(() =>
        {
            var n = 0;
            while (!stop.IsCancellationRequested)
            {
                Log.Connect(logger, $"s{i}", "mx", "192.0.2.7", n++);
            }
        })).ToArray();
        for (var i = 0; i < 200; i++)
        {
            provider.MinimumLevel = i % 2 == 0 ? LogLevel.Warning : LogLevel.Information;
            await Task.Yield();
        }
        provider.MinimumLevel = LogLevel.Warning;
        stop.Cancel();
        await Task.WhenAll(writers);
        Assert.Equal(LogLevel.Warning, provider.MinimumLevel);
        Assert.False(logger.IsEnabled(LogLevel.Information));
    }
}
