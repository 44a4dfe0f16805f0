using System.Globalization;
using System.Text.Json;
using Postern.Server.Queue;

namespace Postern.Cli;

/// <summary>`postern queue list|show|delete`, on the spool files, whether or not the server runs.</summary>
public static class QueueCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        a.Allow("--json");
        var (options, _) = CommandLine.LoadOptions(a);
        var queueDir = Path.Combine(options.DataDirectory, "queue");
        var action = a.Positional.ElementAtOrDefault(0) ?? "list";
        var spool = new Spool(queueDir);
        try
        {
            switch (action)
            {
                case "list":
                    return List(spool, a.Json, stdout);
                case "show":
                case "delete":
                    var id = a.Positional.ElementAtOrDefault(1) ?? throw new UsageException($"queue {action} ID");
                    if (!QueueId.IsValid(id))
                    {
                        throw new UsageException($"'{id}' is not a queue id");
                    }
                    return action == "show" ? Show(spool, new QueueId(id), a.Json, stdout, stderr) : Delete(spool, new QueueId(id), stdout, stderr);
                default:
                    throw new UsageException($"unknown action 'queue {action}'");
            }
        }
        finally
        {
            spool.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private sealed record Row(string Id, string State, string From, List<string> Recipients, long Size, double AgeSeconds, DateTimeOffset Received);

    private static IEnumerable<Row> Rows(Spool spool)
    {
        foreach (var id in spool.ListIds())
        {
            SpooledMessage m;
            try
            {
                m = spool.Read(id);
            }
            catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
            {
                continue;
            }
            var state = spool.ReadState(id);
            var pending = state?.Recipients.Where(r => r.Status is not ("delivered" or "bounced")).Select(r => r.Address).ToList()
                          ?? m.Envelope.Recipients.Select(r => r.Address).ToList();
            var status = state is null ? "active" : state.Recipients.Any(r => r.Status == "deferred") ? "deferred" : "active";
            yield return new Row(id.Value, status, m.Envelope.From, pending, m.MessageLength, Math.Round((DateTimeOffset.UtcNow - m.Envelope.Received).TotalSeconds), m.Envelope.Received);
        }
    }

    private static int List(Spool spool, bool json, TextWriter stdout)
    {
        var rows = Rows(spool).ToList();
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(rows, Json));
            return ExitCode.Ok;
        }
        if (rows.Count == 0)
        {
            stdout.WriteLine("queue is empty");
            return ExitCode.Ok;
        }
        stdout.WriteLine($"{"ID",-12}  {"STATE",-8}  {"SIZE",8}  {"AGE",8}  FROM -> RECIPIENTS");
        foreach (var r in rows)
        {
            stdout.WriteLine($"{r.Id,-12}  {r.State,-8}  {r.Size,8}  {Age(r.AgeSeconds),8}  <{r.From}> -> {string.Join(", ", r.Recipients.Select(x => $"<{x}>"))}");
        }
        stdout.WriteLine($"{rows.Count} message(s)");
        return ExitCode.Ok;
    }

    private static string Age(double seconds) => seconds switch
    {
        < 120 => $"{seconds:0}s",
        < 7200 => $"{seconds / 60:0}m",
        < 172800 => $"{seconds / 3600:0}h",
        _ => $"{seconds / 86400:0}d",
    };

    private static int Show(Spool spool, QueueId id, bool json, TextWriter stdout, TextWriter stderr)
    {
        SpooledMessage m;
        try
        {
            m = spool.Read(id);
        }
        catch (FileNotFoundException)
        {
            stderr.WriteLine($"postern: no message {id} in the queue");
            return ExitCode.Problem;
        }
        catch (InvalidDataException bad)
        {
            stderr.WriteLine($"postern: message {id} is unreadable: {bad.Message}");
            return ExitCode.Problem;
        }
        var state = spool.ReadState(id);
        var recipients = m.Envelope.Recipients.Select(r =>
        {
            var s = state?.Recipients.FirstOrDefault(x => x.Address == r.Address);
            return new
            {
                r.Address,
                r.Local,
                Status = s?.Status ?? "pending",
                s?.Detail,
                s?.LastAttempt,
                s?.NextAttempt,
                Explanation = Explain(r.Local, s),
                r.Notify,
                r.ORcpt,
            };
        }).ToList();
        var extra = state?.Recipients.Where(s => s.Original is not null).Select(s => new { s.Address, s.Original, s.Status, s.Detail }).ToList();
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(new { m.Envelope, Size = m.MessageLength, Recipients = recipients, Forwarded = extra }, Json));
            return ExitCode.Ok;
        }
        var e = m.Envelope;
        stdout.WriteLine($"Queue id:  {id}");
        stdout.WriteLine($"Received:  {e.Received.ToString("u", CultureInfo.InvariantCulture)} from {e.Helo} [{e.ClientIp}] on {e.Listener} ({e.Protocol}){(e.AuthUser is null ? "" : $", user {e.AuthUser}")}");
        stdout.WriteLine($"From:      <{e.From}>  body={e.Body}{(e.SmtpUtf8 ? " SMTPUTF8" : "")}{(e.Ret is null ? "" : $" RET={e.Ret}")}{(e.EnvId is null ? "" : $" ENVID={e.EnvId}")}");
        stdout.WriteLine($"Size:      {m.MessageLength} octets");
        foreach (var r in recipients)
        {
            stdout.WriteLine($"To:        <{r.Address}>  {r.Status}{(r.Detail is null ? "" : $": {r.Detail}")}");
            stdout.WriteLine($"           {r.Explanation}");
        }
        foreach (var x in extra ?? [])
        {
            stdout.WriteLine($"Forwarded: <{x.Address}> (alias of <{x.Original}>)  {x.Status}");
        }
        return ExitCode.Ok;
    }

    private static string Explain(bool local, RecipientState? s) => (local, s?.Status) switch
    {
        (_, "delivered") => "delivered",
        (_, "bounced") => "failed permanently; a bounce goes to the sender",
        (true, "deferred") => $"local delivery failed for now; next attempt {s!.NextAttempt?.ToString("u", CultureInfo.InvariantCulture) ?? "soon"}",
        (true, _) => "waiting for local delivery (the server delivers it as soon as it runs)",
        (false, _) => "remote recipient: waits in the queue for outbound delivery",
    };

    private static int Delete(Spool spool, QueueId id, TextWriter stdout, TextWriter stderr)
    {
        if (!spool.Remove(id))
        {
            stderr.WriteLine($"postern: no message {id} in the queue");
            return ExitCode.Problem;
        }
        stdout.WriteLine($"deleted {id}");
        return ExitCode.Ok;
    }
}
