using System.Globalization;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Postern.Server.Configuration;

namespace Postern.Server.Logging;

/// <summary>
/// Writes one line per event (SPEC §7), as <c>TIME LEVEL event=NAME key=value ...</c> or, with
/// <see cref="LogFormat.Json"/>, as one JSON object per line (<c>{"time":…,"level":…,"event":…,"key":…}</c>)
/// for log shippers. The keys are the placeholders of the <see cref="Log"/> catalogue. Values are
/// escaped so that client data (a HELO name, an address) can never forge a second line or a second
/// key. Lines go through a bounded channel to one writer, so a slow terminal never stalls a session.
/// The level can be changed while the server runs (<see cref="MinimumLevel"/>), for a reload.
/// </summary>
public sealed class KeyValueLoggerProvider : ILoggerProvider
{
    /// <summary>Longest value written, in characters; past it the value is cut (a log line stays a line, not a message).</summary>
    private const int MaxValueLength = 512;

    private readonly Channel<string> _lines = Channel.CreateBounded<string>(new BoundedChannelOptions(65536)
    {
        FullMode = BoundedChannelFullMode.DropWrite,
        SingleReader = true,
    });
    private readonly Task _writer;
    private readonly TextWriter _output;
    private readonly TimeProvider _time;
    private readonly LogFormat _format;
    // An int so that reads and writes are atomic and volatile is allowed: IsEnabled reads it on every call.
    private volatile int _minimum;

    [ThreadStatic]
    private static StringBuilder? t_line;

    public KeyValueLoggerProvider(TextWriter output, LogLevel minimum = LogLevel.Information, TimeProvider? time = null, LogFormat format = LogFormat.KeyValue)
    {
        _output = output;
        _minimum = (int)minimum;
        _time = time ?? TimeProvider.System;
        _format = format;
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>
    /// The lowest level written (Logging.Level); <see cref="LogLevel.None"/> writes nothing. Safe to set
    /// from any thread while sessions log: the next event is judged by the new level.
    /// </summary>
    public LogLevel MinimumLevel
    {
        get => (LogLevel)_minimum;
        set => _minimum = (int)value;
    }

    /// <summary>The line format (Logging.Format), fixed for the life of the provider.</summary>
    public LogFormat Format => _format;

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

    private bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && (int)logLevel >= _minimum;

    private void Write<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel))
        {
            return;
        }
        // One builder per thread, reused: the only allocation a line makes is its string.
        var sb = t_line ??= new StringBuilder(256);
        sb.Clear();
        if (_format == LogFormat.Json)
        {
            FormatJson(sb, _time.GetUtcNow(), logLevel, eventId, state, exception, formatter);
        }
        else
        {
            FormatKeyValue(sb, _time.GetUtcNow(), logLevel, eventId, state, exception, formatter);
        }
        sb.Append('\n');
        _lines.Writer.TryWrite(sb.ToString());
        if (sb.Capacity > 4096)
        {
            t_line = null; // an unusually long line does not keep its buffer for ever
        }
    }

    private static void FormatKeyValue<TState>(StringBuilder sb, DateTimeOffset now, LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        AppendTime(sb, now);
        sb.Append(' ').Append(LevelName(logLevel));
        sb.Append(" event=");
        AppendEventName(sb, eventId);
        if (state is IReadOnlyList<KeyValuePair<string, object?>> pairs)
        {
            for (var i = 0; i < pairs.Count; i++)
            {
                var (key, value) = pairs[i];
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
    }

    /// <summary>
    /// One JSON object (RFC 8259): time, level and event first, then every key of the event as a
    /// property; numbers and booleans as JSON values, null as null, everything else as a string. A key
    /// that would repeat time, level or event (the ban's level) is written with the event's name in
    /// front (<c>ban_level</c>), so that no object has two properties of one name.
    /// </summary>
    private static void FormatJson<TState>(StringBuilder sb, DateTimeOffset now, LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        sb.Append("{\"time\":\"");
        AppendTime(sb, now);
        sb.Append("\",\"level\":\"").Append(LevelName(logLevel)).Append("\",\"event\":\"");
        if (eventId.Name is { } name)
        {
            AppendJsonChars(sb, name);
        }
        else
        {
            sb.Append(eventId.Id);
        }
        sb.Append('"');
        if (state is IReadOnlyList<KeyValuePair<string, object?>> pairs)
        {
            for (var i = 0; i < pairs.Count; i++)
            {
                var (key, value) = pairs[i];
                if (key == "{OriginalFormat}")
                {
                    continue;
                }
                sb.Append(",\"");
                if (key is "time" or "level" or "event")
                {
                    AppendJsonChars(sb, eventId.Name ?? "event");
                    sb.Append('_');
                }
                AppendJsonChars(sb, key);
                sb.Append("\":");
                AppendJsonValue(sb, value);
            }
        }
        else
        {
            sb.Append(",\"msg\":");
            AppendJsonValue(sb, formatter(state, exception));
        }
        if (exception is not null)
        {
            sb.Append(",\"error\":");
            AppendJsonValue(sb, exception.GetType().Name + ": " + exception.Message);
        }
        sb.Append('}');
    }

    private static void AppendTime(StringBuilder sb, DateTimeOffset now)
    {
        Span<char> buffer = stackalloc char[32];
        if (now.TryFormat(buffer, out var n, "yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture))
        {
            sb.Append(buffer[..n]);
        }
    }

    private static void AppendEventName(StringBuilder sb, EventId eventId)
    {
        if (eventId.Name is { } name)
        {
            sb.Append(name);
        }
        else
        {
            sb.Append(eventId.Id);
        }
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

    /// <summary>Appends a value bare when it is a safe token, otherwise quoted with escapes.</summary>
    public static void AppendValue(StringBuilder sb, object? value)
    {
        // Numbers and dates format into the stack, not into a string of their own.
        Span<char> buffer = stackalloc char[64];
        if (value is ISpanFormattable f && f.TryFormat(buffer, out var written, default, CultureInfo.InvariantCulture))
        {
            AppendValue(sb, buffer[..written]);
            return;
        }
        AppendValue(sb, value switch
        {
            null => "",
            IFormattable g => g.ToString(null, CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        });
    }

    private static void AppendValue(StringBuilder sb, ReadOnlySpan<char> s)
    {
        if (IsToken(s))
        {
            sb.Append(s);
            return;
        }
        sb.Append('"');
        foreach (var c in s.Length > MaxValueLength ? s[..MaxValueLength] : s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                // C0, DEL and C1 (U+0085 NEL, U+009B CSI: a terminal obeys them too), and the Unicode line separators.
                case < ' ' or (>= '\x7f' and < '\xa0'):
                    sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    break;
                case '\u2028' or '\u2029':
                    sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    break;
                default: sb.Append(c); break;
            }
        }
        sb.Append('"');
    }

    private static bool IsToken(ReadOnlySpan<char> s)
    {
        if (s.IsEmpty)
        {
            return false;
        }
        foreach (var c in s)
        {
            if (c <= ' ' || c >= 127 || c is '"' or '=' or '\\')
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>A value as JSON: a number or boolean as itself, null as null, anything else a string.</summary>
    private static void AppendJsonValue(StringBuilder sb, object? value)
    {
        switch (value)
        {
            case null:
                sb.Append("null");
                return;
            case bool b:
                sb.Append(b ? "true" : "false");
                return;
            case int or long or short or byte or uint or ulong or ushort or sbyte:
                AppendValue(sb, value);
                return;
            case double d when double.IsFinite(d):
                sb.Append(d.ToString("R", CultureInfo.InvariantCulture));
                return;
        }
        sb.Append('"');
        Span<char> buffer = stackalloc char[64];
        if (value is ISpanFormattable f && f.TryFormat(buffer, out var written, default, CultureInfo.InvariantCulture))
        {
            AppendJsonChars(sb, buffer[..written]);
        }
        else
        {
            var s = value is IFormattable g ? g.ToString(null, CultureInfo.InvariantCulture) : value.ToString() ?? "";
            AppendJsonChars(sb, s.Length > MaxValueLength ? s.AsSpan(0, MaxValueLength) : s);
        }
        sb.Append('"');
    }

    /// <summary>
    /// The characters of a JSON string (RFC 8259 §7): quote, backslash and control characters escaped;
    /// other text, non-ASCII included, as it is (the output is UTF-8). DEL and the line and paragraph
    /// separators are escaped too, so the line is plain for any reader; a lone surrogate, which no
    /// UTF-8 writer can carry, becomes U+FFFD.
    /// </summary>
    private static void AppendJsonChars(StringBuilder sb, ReadOnlySpan<char> s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case < ' ' or (>= '\x7f' and < '\xa0') or '\u2028' or '\u2029':
                    sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    break;
                default:
                    if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                    {
                        sb.Append(c).Append(s[++i]);
                    }
                    else if (char.IsSurrogate(c))
                    {
                        sb.Append('\uFFFD');
                    }
                    else
                    {
                        sb.Append(c);
                    }
                    break;
            }
        }
    }

    private sealed class KeyValueLogger(KeyValueLoggerProvider owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => owner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Write(logLevel, eventId, state, exception, formatter);
    }
}
