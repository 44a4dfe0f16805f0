using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Postern.Server.Logging;

/// <summary>
/// Writes one line per event (SPEC §7): <c>TIME LEVEL event=NAME key=value ...</c>. The keys are the
/// placeholders of the <see cref="Log"/> catalogue. Values are escaped so that client data (a HELO
/// name, an address) can never forge a second line or a second key. Lines go through a bounded
/// channel to one writer, so a slow terminal never stalls a session.
/// </summary>
public sealed class KeyValueLoggerProvider : ILoggerProvider
{
    private readonly Channel<string> _lines = Channel.CreateBounded<string>(new BoundedChannelOptions(65536)
    {
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
    });
    private readonly Task _writer;
    private readonly TextWriter _output;
    private readonly LogLevel _minimum;
    private readonly TimeProvider _time;

    public KeyValueLoggerProvider(TextWriter output, LogLevel minimum = LogLevel.Information, TimeProvider? time = null)
    {
        _output = output;
        _minimum = minimum;
        _time = time ?? TimeProvider.System;
        _writer = Task.Run(WriteLoopAsync);
    }

    public ILogger CreateLogger(string categoryName) => new KeyValueLogger(this);

    private async Task WriteLoopAsync()
    {
        while (await _lines.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            while (_lines.Reader.TryRead(out var line))
            {
                _output.Write(line);
            }
            _output.Flush();
        }
    }

    public void Dispose()
    {
        _lines.Writer.TryComplete();
        _writer.Wait(TimeSpan.FromSeconds(5));
    }

    private sealed class KeyValueLogger(KeyValueLoggerProvider owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= owner._minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }
            var sb = new StringBuilder(160);
            sb.Append(owner._time.GetUtcNow().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture));
            sb.Append(' ').Append(LevelName(logLevel));
            sb.Append(" event=").Append(eventId.Name ?? eventId.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (state is IReadOnlyList<KeyValuePair<string, object?>> pairs)
            {
                foreach (var (key, value) in pairs)
                {
                    if (key == "{OriginalFormat}")
                    {
                        continue;
                    }
                    sb.Append(' ').Append(key).Append('=');
                    AppendValue(sb, value);
                }
            }
            else
            {
                sb.Append(" msg=");
                AppendValue(sb, formatter(state, exception));
            }
            if (exception is not null)
            {
                sb.Append(" error=");
                AppendValue(sb, exception.GetType().Name + ": " + exception.Message);
            }
            sb.Append('\n');
            owner._lines.Writer.TryWrite(sb.ToString());
        }

        private static string LevelName(LogLevel l) => l switch
        {
            LogLevel.Trace => "trace",
            LogLevel.Debug => "debug",
            LogLevel.Information => "info",
            LogLevel.Warning => "warn",
            LogLevel.Error => "error",
            _ => "crit",
        };
    }

    /// <summary>Appends a value bare when it is a safe token, otherwise quoted with escapes.</summary>
    public static void AppendValue(StringBuilder sb, object? value)
    {
        var s = value switch
        {
            null => "",
            IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        };
        if (s.Length > 0 && s.All(c => c > ' ' && c < 127 && c != '"' && c != '=' && c != '\\'))
        {
            sb.Append(s);
            return;
        }
        sb.Append('"');
        foreach (var c in s.Length > 512 ? s[..512] : s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case < ' ' or '\x7f':
                    sb.Append("\\x").Append(((int)c).ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
                    break;
                default: sb.Append(c); break;
            }
        }
        sb.Append('"');
    }
}
