using System.Globalization;
using System.Text.Json;
using Postern.Server.Configuration;
using Postern.Server.Queue;

using Postern.Invocation;

namespace Postern.Cli;

/// <summary>
/// `postern queue list|show|summary|flush|retry|hold|release|bounce|delete` (SPEC §1), whether or not
/// the server runs. Reading is done on the spool files. An action is done on the files by this command
/// when no server runs (it holds queue/server.lock meanwhile, so no server starts under it), and
/// handed to the server through queue/control/ when one does (docs/queue-format.md).
/// </summary>
public static class QueueCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };
    private static readonly JsonSerializerOptions JsonWithoutNulls = new() { WriteIndented = true, DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };
    // The server answers within a few seconds (it waits up to five for a busy worker).
    private static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(10);
    // Age columns of `queue summary`, in minutes, as Postfix's qshape draws them: each bucket doubles.
    private static readonly int[] Buckets = [5, 10, 20, 40, 80, 160, 320, 640, 1280];

    public static int Run(Arguments a, TextWriter stdout, TextWriter stderr)
    {
        a.Allow("--json");
        var (options, _) = CommandLine.LoadOptions(a, actAsDataOwner: true);
        var queueDir = Path.Combine(options.DataDirectory, "queue");
        var action = a.Positional.ElementAtOrDefault(0) ?? "list";
        var withId = action is "show" or "retry" or "hold" or "release" or "bounce" or "delete";
        if (!withId && action is not ("list" or "summary" or "flush"))
        {
            throw new UsageException($"unknown action 'queue {action}'");
        }
        if (a.Positional.Count > (withId ? 2 : 1))
        {
            throw new UsageException($"queue {action}{(withId ? " ID" : "")} takes no more arguments ('{a.Positional[^1]}')");
        }
        QueueId? id = null;
        if (withId)
        {
            var given = a.Positional.ElementAtOrDefault(1) ?? throw new UsageException($"queue {action} ID");
            if (!QueueId.IsValid(given))
            {
                throw new UsageException($"'{given}' is not a queue id");
            }
            id = new QueueId(given);
        }
        var spool = new Spool(queueDir);
        try
        {
            return action switch
            {
                "list" => List(spool, a.Json, stdout),
                "show" => Show(spool, id!.Value, options.Delivery, a.Json, stdout, stderr),
                "summary" => Summary(spool, a.Json, stdout),
                _ => Act(spool, action, id, a.Json, stdout, stderr),
            };
        }
        finally
        {
            spool.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    // ---- list ----

    private sealed record Row(string Id, string State, string From, List<string> Recipients, long Size, double AgeSeconds, DateTimeOffset Received);

    private static int List(Spool spool, bool json, TextWriter stdout)
    {
        var now = DateTimeOffset.UtcNow;
        var rows = QueueEntries.All(spool).Select(e => new Row(e.Message.Id.Value, e.Status, e.Message.Envelope.From, e.Waiting.Select(r => r.Address).ToList(),
            e.Message.MessageLength, Math.Round((now - e.Message.Envelope.Received).TotalSeconds), e.Message.Envelope.Received)).ToList();
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

    // ---- show ----

    private static int Show(Spool spool, QueueId id, DeliveryOptions options, bool json, TextWriter stdout, TextWriter stderr)
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
        var entry = QueueEntries.Read(spool, new QueueControl(spool.Root), m);
        var setAside = spool.CorruptStates(id);
        var e = m.Envelope;
        var now = DateTimeOffset.UtcNow;
        var bouncesAt = e.Received + options.MaxQueueLifetime;
        var recipients = e.Recipients.Select(r =>
        {
            var s = entry.State?.Recipients.FirstOrDefault(x => x.Address == r.Address && x.Original is null);
            var reply = Interpret(s);
            return new
            {
                r.Address,
                r.Local,
                Status = (s?.Status ?? RecipientStatus.Pending).Word(),
                s?.Detail,
                Attempts = s?.Attempts ?? 0,
                s?.LastAttempt,
                s?.NextAttempt,
                Explanation = Explain(s, r.Local, entry.Held, e, id, options, now),
                Diagnosis = reply?.Code,
                Meaning = reply?.Cause,
                Advice = reply?.Fix,
                r.Notify,
                r.ORcpt,
            };
        }).ToList();
        var forwarded = entry.State?.Recipients.Where(s => s.Original is not null).Select(s =>
        {
            var reply = Interpret(s);
            return new
            {
                s.Address,
                s.Original,
                Status = s.Status.Word(),
                s.Detail,
                s.Attempts,
                s.LastAttempt,
                s.NextAttempt,
                Explanation = Explain(s, s.Local, entry.Held, e, id, options, now),
                Diagnosis = reply?.Code,
                Meaning = reply?.Cause,
                Advice = reply?.Fix,
            };
        }).ToList();
        // The state file, when it could not be read (now, or earlier: the server then moved it aside).
        var stateProblem = entry.StateProblem is { } problem
            ? $"the state file queue/state/{id} is unreadable ({problem}); the server moves it to queue/corrupt/ and holds the message when it next takes it"
            : setAside.Count > 0 && entry.State is null
                ? $"the state file was unreadable and was moved to {setAside[^1]}: which recipients already had their copy is unknown (look there); `postern queue release {id}` delivers to every recipient again, `postern queue delete {id}` drops it"
                : null;
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(new
            {
                m.Envelope,
                Size = m.MessageLength,
                State = entry.Status,
                entry.Held,
                StateProblem = stateProblem,
                BouncesAt = bouncesAt,
                Recipients = recipients,
                Forwarded = forwarded,
            }, Json));
            return ExitCode.Ok;
        }
        stdout.WriteLine($"Queue id:  {id}");
        stdout.WriteLine($"Received:  {Time(e.Received)} from {e.Helo} [{e.ClientIp}] on {e.Listener} ({e.Protocol}){(e.AuthUser is null ? "" : $", user {e.AuthUser}")}");
        stdout.WriteLine($"From:      <{e.From}>  body={e.Body}{(e.SmtpUtf8 ? " SMTPUTF8" : "")}{(e.Ret is null ? "" : $" RET={e.Ret}")}{(e.EnvId is null ? "" : $" ENVID={e.EnvId}")}");
        stdout.WriteLine($"Size:      {m.MessageLength} octets");
        stdout.WriteLine($"State:     {entry.Status}{(entry.Held ? $" (on hold: nothing is delivered until `postern queue release {id}`)" : "")}");
        if (stateProblem is not null)
        {
            stdout.WriteLine($"Corrupt:   {stateProblem}");
        }
        stdout.WriteLine($"Expires:   {Time(bouncesAt)} (Received + Delivery.MaxQueueLifetime {Span(options.MaxQueueLifetime)}): what is still undelivered then bounces");
        foreach (var r in recipients)
        {
            stdout.WriteLine($"To:        <{r.Address}>  {r.Status}{(r.Detail is null ? "" : $": {r.Detail}")}");
            stdout.WriteLine($"           {r.Explanation}");
            WriteMeaning(stdout, r.Diagnosis, r.Meaning, r.Advice);
        }
        foreach (var x in forwarded ?? [])
        {
            stdout.WriteLine($"Forwarded: <{x.Address}> (alias of <{x.Original}>)  {x.Status}{(x.Detail is null ? "" : $": {x.Detail}")}");
            stdout.WriteLine($"           {x.Explanation}");
            WriteMeaning(stdout, x.Diagnosis, x.Meaning, x.Advice);
        }
        return ExitCode.Ok;
    }

    /// <summary>
    /// The remote reply (or Postern's own reason) of a deferred or bounced recipient, interpreted:
    /// what it means and what to do (issue 6; the same words as `postern diag deliver`).
    /// </summary>
    private static Postern.Diagnostics.ReplyExplanation? Interpret(RecipientState? s) =>
        s is { Status: RecipientStatus.Deferred or RecipientStatus.Bounced, Detail: { Length: > 0 } detail } ? Postern.Diagnostics.ReplyExplainer.Explain(detail) : null;

    private static void WriteMeaning(TextWriter stdout, string? diagnosis, string? meaning, string? advice)
    {
        if (diagnosis is null)
        {
            return;
        }
        stdout.WriteLine($"           meaning: {meaning} ({diagnosis})");
        stdout.WriteLine($"           advice:  {advice}");
    }

    /// <summary>One recipient in plain words: what happened last, what happens next, and why (SPEC §6).</summary>
    private static string Explain(RecipientState? s, bool local, bool held, Envelope e, QueueId id, DeliveryOptions o, DateTimeOffset now)
    {
        var expiry = $"the message bounces if still undelivered at {Time(e.Received + o.MaxQueueLifetime)}";
        switch (s?.Status ?? RecipientStatus.Pending)
        {
            case RecipientStatus.Delivered:
                return s!.LastAttempt is { } at ? $"delivered at {Time(at)}" : "delivered";
            case RecipientStatus.Bounced:
                var when = s!.LastAttempt is { } last ? $"last attempt {Time(last)}; " : "";
                return s.Notified
                    ? $"{when}failed permanently; the bounce went to {QueueControl.Sender(e)}"
                    : $"{when}failed permanently; the bounce goes to {QueueControl.Sender(e)} when the server next takes the message";
            case RecipientStatus.Deferred:
                var failed = local
                    ? $"local delivery failed for now{(s!.LastAttempt is { } l ? $" at {Time(l)}" : "")}"
                    : $"attempt {s!.Attempts}{(s.LastAttempt is { } t ? $" at {Time(t)}" : "")} failed with a temporary error";
                string next;
                if (held)
                {
                    next = $"no next attempt while the message is on hold (`postern queue release {id}`)";
                }
                else if (s.NextAttempt is not { } due)
                {
                    next = "the next attempt as soon as the server takes the message (a retry was asked for)";
                }
                else if (due <= now)
                {
                    next = $"the next attempt was due at {Time(due)}, so it comes as soon as the server takes the message";
                }
                else if (local)
                {
                    next = $"the next at {Time(due)} ({Span(due - now)} from now; local delivery is retried every minute)";
                }
                else
                {
                    next = $"the next at {Time(due)} ({Span(due - now)} from now; the wait doubles from Delivery.RetryInitialDelay {Span(o.RetryInitialDelay)} up to Delivery.RetryMaxDelay {Span(o.RetryMaxDelay)})";
                }
                return $"{failed}; {next}; {expiry}";
            default:
                if (held)
                {
                    return $"not tried yet: on hold until `postern queue release {id}`";
                }
                return local
                    ? "waiting for local delivery (the server delivers it as soon as it takes the message)"
                    : $"remote recipient, not tried yet: it goes out as soon as a delivery worker and a connection to its destination are free; {expiry}";
        }
    }

    private static string Time(DateTimeOffset t) => t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>A duration the way an administrator writes it: 5m, 4h, 5d, 1h30m.</summary>
    private static string Span(TimeSpan t)
    {
        if (t < TimeSpan.FromMinutes(1))
        {
            return $"{Math.Max(0, (int)t.TotalSeconds)}s";
        }
        var parts = new List<string>();
        if (t.Days > 0)
        {
            parts.Add($"{t.Days}d");
        }
        if (t.Hours > 0)
        {
            parts.Add($"{t.Hours}h");
        }
        if (t.Minutes > 0 && t.Days == 0)
        {
            parts.Add($"{t.Minutes}m");
        }
        return string.Concat(parts);
    }

    // ---- summary ----

    private sealed record Shape(string Domain, int Total, int[] Counts);

    /// <summary>Postfix's qshape: recipients not yet delivered, per destination domain and by age.</summary>
    private static int Summary(Spool spool, bool json, TextWriter stdout)
    {
        var now = DateTimeOffset.UtcNow;
        var counts = new Dictionary<string, int[]>(StringComparer.Ordinal);
        var total = new int[Buckets.Length + 1];
        foreach (var entry in QueueEntries.All(spool))
        {
            var minutes = (now - entry.Message.Envelope.Received).TotalMinutes;
            var bucket = Array.FindIndex(Buckets, b => minutes <= b);
            bucket = bucket < 0 ? Buckets.Length : bucket;
            foreach (var r in entry.Waiting)
            {
                var domain = r.Address[(r.Address.LastIndexOf('@') + 1)..].ToLowerInvariant();
                if (!counts.TryGetValue(domain, out var row))
                {
                    counts[domain] = row = new int[Buckets.Length + 1];
                }
                row[bucket]++;
                total[bucket]++;
            }
        }
        var rows = counts.Select(kv => new Shape(kv.Key, kv.Value.Sum(), kv.Value))
            .OrderByDescending(r => r.Total).ThenBy(r => r.Domain, StringComparer.Ordinal).ToList();
        var columns = Buckets.Select(b => b.ToString(CultureInfo.InvariantCulture)).Append($"{Buckets[^1]}+").ToList();
        var sum = new Shape("TOTAL", total.Sum(), total);
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(new { Unit = "recipients", AgeMinutes = columns, Total = sum, Domains = rows }, Json));
            return ExitCode.Ok;
        }
        var width = Math.Max(5, rows.Select(r => r.Domain.Length).DefaultIfEmpty(0).Max());
        var cell = Math.Max(5, rows.Append(sum).SelectMany(r => r.Counts.Append(r.Total)).Max().ToString(CultureInfo.InvariantCulture).Length);
        string Line(string first, IEnumerable<string> cells) => first.PadLeft(width) + string.Concat(cells.Select(c => " " + c.PadLeft(cell)));
        stdout.WriteLine(Line("", columns.Prepend("T")));
        foreach (var r in rows.Prepend(sum))
        {
            stdout.WriteLine(Line(r.Domain, r.Counts.Prepend(r.Total).Select(c => c.ToString(CultureInfo.InvariantCulture))));
        }
        stdout.WriteLine($"(recipients not yet delivered, by destination domain; T is the total, then by age in minutes: up to 5, 5 to 10, ... over {Buckets[^1]})");
        return ExitCode.Ok;
    }

    // ---- flush, retry, hold, release, bounce, delete ----

    private sealed record ActionResult(string? Id, string Action, string Result, string Server, string Detail, int? Messages);

    private static int Act(Spool spool, string action, QueueId? id, bool json, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            return ActOnQueue(spool, action, id, json, stdout, stderr);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // (e.g. run as a user who may not write the queue: run it as the server's user)
            stderr.WriteLine($"postern: queue {action}: {e.Message}");
            return ExitCode.Problem;
        }
    }

    private static int ActOnQueue(Spool spool, string action, QueueId? id, bool json, TextWriter stdout, TextWriter stderr)
    {
        var control = new QueueControl(spool.Root);
        var request = new ControlRequest { Action = action, Id = id?.Value, Requested = DateTimeOffset.UtcNow };
        ControlReply? reply = null;
        using (var turn = control.TakeTurn(ReplyTimeout))
        {
            if (turn is null)
            {
                stderr.WriteLine($"postern: another `postern queue` command holds {control.CommandLockPath}; try again");
                return ExitCode.Problem;
            }
            if (!turn.ServerRuns)
            {
                reply = control.ApplyWithoutServer(spool, request, DateTimeOffset.UtcNow);
            }
        }
        var server = reply is null ? "running" : "stopped";
        if (reply is null)
        {
            var name = control.Submit(request);
            reply = control.WaitForReply(name, ReplyTimeout);
            if (reply is null)
            {
                reply = new ControlReply("no_answer",
                    $"a server holds {control.LockPath} but did not take the request within {ReplyTimeout.TotalSeconds:0} s (is it stuck?); the request was withdrawn, nothing changed", Ok: false);
            }
        }
        if (json)
        {
            stdout.WriteLine(JsonSerializer.Serialize(new ActionResult(id?.Value, action, reply.Result, server, reply.Detail, action == "flush" ? reply.Messages : null), JsonWithoutNulls));
        }
        else if (reply.Ok)
        {
            stdout.WriteLine(reply.Detail);
        }
        if (!reply.Ok)
        {
            stderr.WriteLine($"postern: {reply.Detail}");
        }
        return reply.Ok ? ExitCode.Ok : ExitCode.Problem;
    }
}
