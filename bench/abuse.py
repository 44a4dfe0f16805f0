#!/usr/bin/env python3
"""Postern under attack: memory per idle connection, and well-behaved throughput during a flood.

  abuse.py --port P --pid PID [--idle 10000] [--clients 20] [--messages 50] [--flood 50]
           [--rcpt user@bench.test]

Phases (all on loopback; other addresses in 127/8 stand for other hosts):
 1. idle:  IDLE connections, each from its own address (127.1.x.y, so per-address limits do not
           apply), each greeted and then silent; the server's VmRSS before and with them.
 2. calm:  CLIENTS well-behaved clients (127.0.2.N), each sending MESSAGES 1 KiB messages over one
           connection, one after the other; msgs/s.
 3. flood: the same while FLOOD tasks from one address (127.0.0.66) connect as fast as they can
           and send garbage; msgs/s, and how many flood connections were greeted and refused.
The idle connections stay open through phases 2 and 3. Prints key=value lines.
"""
import argparse
import asyncio
import resource
import time

BODY = ("x" * 76 + "\r\n") * 13  # ~1 KiB


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


async def reply(reader, timeout=60):
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ConnectionError("closed")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines).decode("ascii", "replace")


async def command(reader, writer, text, expect):
    writer.write(text.encode() + b"\r\n")
    await writer.drain()
    r = await reply(reader)
    if not r.startswith(expect):
        raise RuntimeError(f"{text.split()[0]}: {r.strip()}")
    return r


async def open_idle(port, n, sem, conns, errors):
    async with sem:
        addr = f"127.1.{n // 250 + 1}.{n % 250 + 1}"
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=(addr, 0)), 60)
            r = await reply(reader, 60)
            if not r.startswith("220"):
                raise RuntimeError(r.strip())
            conns.append(writer)
        except Exception as e:  # noqa: BLE001
            errors.append(f"{type(e).__name__}: {e}")


async def client(port, n, messages, rcpt):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.2.{n}", 0))
    await reply(reader)
    await command(reader, writer, f"EHLO good{n}.bench.test", "250")
    for m in range(messages):
        await command(reader, writer, f"MAIL FROM:<good{n}@bench.test>", "250")
        await command(reader, writer, f"RCPT TO:<{rcpt}>", "250")
        await command(reader, writer, "DATA", "354")
        await command(reader, writer, f"Subject: abuse {n}-{m}\r\n\r\n{BODY}.", "250")
    await command(reader, writer, "QUIT", "221")
    writer.close()


async def well_behaved(port, clients, messages, rcpt):
    start = time.monotonic()
    await asyncio.gather(*(client(port, n, messages, rcpt) for n in range(1, clients + 1)))
    return clients * messages / (time.monotonic() - start)


async def flooder(port, stop, counts):
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.66", 0)), 10)
            try:
                r = await reply(reader, 10)
                if r.startswith("220"):
                    counts["greeted"] += 1
                    writer.write(b"EHLO flood\r\nMAIL FROM:<spam@flood.example>\r\nRCPT TO:<nobody@bench.test>\r\nGARBAGE\r\n")
                    await writer.drain()
                else:
                    counts["refused"] += 1
            finally:
                writer.close()
        except Exception:  # noqa: BLE001 - a refused or reset connection is the point
            counts["errors"] += 1


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--idle", type=int, default=10000)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--messages", type=int, default=50)
    p.add_argument("--flood", type=int, default=50)
    p.add_argument("--rcpt", default="user@bench.test")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    # warm-up: JIT, and each good client passes connection triage once (as a real server would)
    await well_behaved(a.port, a.clients, 5, a.rcpt)
    await asyncio.sleep(2)
    rss_before = rss_kib(a.pid)
    conns, errors = [], []
    sem = asyncio.Semaphore(500)
    await asyncio.gather(*(open_idle(a.port, n, sem, conns, errors) for n in range(a.idle)))
    await asyncio.sleep(3)
    rss_idle = rss_kib(a.pid)
    print(f"idle_open={len(conns)}")
    print(f"idle_failed={len(errors)}")
    if errors:
        print(f"idle_error={errors[0]}")
    print(f"rss_before_kib={rss_before}")
    print(f"rss_idle_kib={rss_idle}")
    print(f"idle_per_conn_kib={(rss_idle - rss_before) / max(1, len(conns)):.1f}")

    calm = await well_behaved(a.port, a.clients, a.messages, a.rcpt)
    print(f"calm_msgs_per_s={calm:.0f}")

    stop = asyncio.Event()
    counts = {"greeted": 0, "refused": 0, "errors": 0}
    floods = [asyncio.create_task(flooder(a.port, stop, counts)) for _ in range(a.flood)]
    await asyncio.sleep(1)
    flooded = await well_behaved(a.port, a.clients, a.messages, a.rcpt)
    stop.set()
    await asyncio.gather(*floods)
    rss_end = rss_kib(a.pid)
    print(f"flood_msgs_per_s={flooded:.0f}")
    print(f"flood_greeted={counts['greeted']}")
    print(f"flood_refused={counts['refused']}")
    print(f"flood_errors={counts['errors']}")
    print(f"rss_end_kib={rss_end}")
    for w in conns:
        w.close()


asyncio.run(main())
