using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Postern.IntegrationTests.Infrastructure;

namespace Postern.IntegrationTests.Smtp;

/// <summary>SPEC §7: metrics per listener and outcome.</summary>
public sealed class MetricsCount
{
    [Fact]
    public async Task AcceptedMessagesRejectionsAndDeliveriesAreCounted()
    {
        var seen = new ConcurrentBag<(string Name, long Value, string Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) =>
        {
            if (i.Meter.Name == "Postern")
            {
                l.EnableMeasurementEvents(i);
            }
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) =>
            seen.Add((i.Name, v, string.Join(",", tags.ToArray().Select(t => $"{t.Key}={t.Value}")))));
        listener.Start();

        await using var server = await TestServer.StartAsync();
        await using (var c = await RawSmtp.OpenAsync(server.MxPort))
        {
            await c.CommandAsync("MAIL FROM:<a@remote.example>", 250);
            await c.CommandAsync("RCPT TO:<nobody@example.test>", 550);
            await c.CommandAsync("RCPT TO:<alice@example.test>", 250);
            await c.CommandAsync("DATA", 354);
            await c.CommandAsync("Subject: m\r\n\r\nx\r\n.", 250);
        }
        await server.WaitForDeliveryAsync("alice@example.test");
        await server.WaitForLogAsync("event=removed");
        Assert.Contains(seen, m => m.Name == "postern.smtp.messages_accepted" && m.Tags.Contains("listener=mx"));
        Assert.Contains(seen, m => m.Name == "postern.smtp.rejections" && m.Tags.Contains("code=550"));
        Assert.Contains(seen, m => m.Name == "postern.smtp.connections" && m.Tags.Contains("result=accepted"));
        Assert.Contains(seen, m => m.Name == "postern.delivery.attempts" && m.Tags.Contains("relay=local") && m.Tags.Contains("status=sent"));
    }
}
