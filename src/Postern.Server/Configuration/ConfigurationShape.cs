using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace Postern.Server.Configuration;

/// <summary>
/// Checks every key and value of a configuration against the shape of <see cref="PosternOptions"/>
/// before it is bound, so that each unknown key and each value of the wrong type is reported, all of
/// them at once, in the docs' words (Limits.MaxMessageSize, Listeners[0].Role) — not the binder's
/// first exception.
/// </summary>
public static class ConfigurationShape
{
    public static List<string> Check(IConfiguration root)
    {
        var errors = new List<string>();
        foreach (var (key, value) in root.AsEnumerable().OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            // A null value is a section (its path is checked here, its children on their own lines) or an empty object.
            if (CheckOne(key.Split(':'), value) is { } why)
            {
                errors.Add(why);
            }
        }
        return errors;
    }

    private static string? CheckOne(string[] path, string? value)
    {
        var type = typeof(PosternOptions);
        var shown = "";
        for (var i = 0; i < path.Length; i++)
        {
            var segment = path[i];
            var element = ElementType(type);
            if (DictionaryValueType(type) is { } valueType)
            {
                shown += $"[{segment}]";
                type = valueType;
                continue;
            }
            if (element is not null)
            {
                if (!int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out _))
                {
                    return $"{shown}: is a list; '{segment}' is not an index (write a JSON array)";
                }
                shown += $"[{segment}]";
                type = element;
                continue;
            }
            if (IsScalar(type))
            {
                return $"{shown}: is a single value, it has no key '{segment}'";
            }
            var property = type.GetProperty(segment, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            var here = shown.Length == 0 ? segment : $"{shown}.{segment}";
            if (property is null || !property.CanWrite)
            {
                var known = type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).Select(p => p.Name).ToList();
                var near = known.OrderBy(k => Distance(k.ToLowerInvariant(), segment.ToLowerInvariant())).FirstOrDefault();
                var hint = near is not null && Distance(near.ToLowerInvariant(), segment.ToLowerInvariant()) <= Math.Max(2, segment.Length / 4)
                    ? $" (did you mean {(shown.Length == 0 ? near : $"{shown}.{near}")}?)"
                    : known.Count > 0 ? $" (known here: {string.Join(", ", known)})" : "";
                return $"{here}: unknown key{hint}";
            }
            shown = here;
            type = property.PropertyType;
        }
        if (value is null)
        {
            return null;
        }
        // An empty JSON list or object reads as the value "".
        return IsScalar(type) ? CheckValue(shown, type, value) : value.Length == 0 ? null : $"{shown}: needs {(ElementType(type) is null ? "an object with keys" : "a list")}, not the value '{value}'";
    }

    private static string? CheckValue(string key, Type type, string value)
    {
        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (target == typeof(string))
        {
            return null;
        }
        if (target.IsEnum)
        {
            return Enum.TryParse(target, value, ignoreCase: true, out _) && !value.Any(char.IsAsciiDigit)
                ? null
                : $"{key}: '{value}' is not one of {string.Join(", ", Enum.GetNames(target).Select(n => n.ToLowerInvariant()))}";
        }
        try
        {
            TypeDescriptor.GetConverter(target).ConvertFromInvariantString(value);
            return null;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or OverflowException or NotSupportedException || e.InnerException is FormatException or OverflowException)
        {
            var what = target == typeof(bool) ? "true or false"
                : target == typeof(int) ? "a whole number (up to 2147483647)"
                : target == typeof(long) ? "a whole number"
                : target == typeof(double) ? "a number"
                : target == typeof(TimeSpan) ? "a duration written d.hh:mm:ss or hh:mm:ss (e.g. 00:05:00 for five minutes, 5.00:00:00 for five days)"
                : $"a {target.Name}";
            return $"{key}: '{value}' is not {what}";
        }
    }

    private static bool IsScalar(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        return t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(TimeSpan) || t == typeof(decimal);
    }

    private static Type? ElementType(Type t) =>
        t != typeof(string) && t.IsGenericType && t.GetGenericTypeDefinition() == typeof(List<>) ? t.GetGenericArguments()[0]
        : t.IsArray ? t.GetElementType()
        : null;

    private static Type? DictionaryValueType(Type t) =>
        t.IsGenericType && t.GetGenericTypeDefinition() == typeof(Dictionary<,>) ? t.GetGenericArguments()[1] : null;

    // Levenshtein distance, for "did you mean".
    private static int Distance(string a, string b)
    {
        var d = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            d[j] = j;
        }
        for (var i = 1; i <= a.Length; i++)
        {
            var previous = d[0];
            d[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var current = d[j];
                d[j] = Math.Min(Math.Min(d[j] + 1, d[j - 1] + 1), previous + (a[i - 1] == b[j - 1] ? 0 : 1));
                previous = current;
            }
        }
        return d[b.Length];
    }
}
