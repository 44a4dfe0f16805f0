#!/usr/bin/env python3
"""Issue 12: 10,000 idle connections on port 25 of a real `postern serve` with its default
limits, and legitimate mail on 587 (STARTTLS + AUTH) and on 25 meanwhile.

  hold10k.py --mx PORT --submission PORT --pid PID --user U --password P
             [--idle 10000] [--messages 20] [--keepalive 5] [--deadline 240]

1. VmRSS of PID (baseline);
2. opens IDLE connections to the mx port from 500 source addresses 127.1.x.y (20 each: the
   default Limits.MaxConnectionsPerIp), reads each greeting, and keeps them open, sending a NOOP
   every KEEPALIVE seconds (0: never) so that they stay under the 10 s stress-mode idle timeout
   and are only shed to make room;
3. VmRSS again: delta / open connections is the memory per idle connection;
4. sends MESSAGES messages on 587 (python smtplib, STARTTLS, AUTH PLAIN) and MESSAGES on 25 (from
   127.0.0.1, one connection each), timing each, while the idle connections are held;
5. counts the idle connections still open and those closed with 421 (shed).
Prints key=value lines. Bounded: every wait has a timeout, the whole run DEADLINE seconds.
"""
import argparse
import asyncio
import resource
import smtplib
import ssl
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


def source(i):
    n = i // 20  # 20 connections per address
    return f"127.1.{n // 250}.{n % 250 + 1}"


class Idle:
    def __init__(self):
        self.open, self.shed, self.failed, self.lost, self.greeted = [], 0, [], 0, 0


async def read_reply(reader, timeout):
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return line


async def hold_one(args, i, sem, state, ready, stop):
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", args.mx, local_addr=(source(i), 0)), 30)
            greeting = await read_reply(reader, 30)
            if not greeting.startswith(b"220"):
                raise ConnectionError(greeting[:60])
        except Exception as e:  # noqa: BLE001 - every failure is reported
            state.failed.append(f"{type(e).__name__}: {e}")
            return
    state.open.append(writer)
    state.greeted += 1
    if state.greeted + len(state.failed) >= args.idle:
        ready.set()
    try:
        while not stop.is_set():
            if args.keepalive > 0:
                try:
                    await asyncio.wait_for(stop.wait(), args.keepalive)
                    break
                except asyncio.TimeoutError:
                    pass
                writer.write(b"NOOP\r\n")
                await writer.drain()
                line = await read_reply(reader, 30)
            else:
                line = await read_reply(reader, args.deadline)
            if line.startswith(b"421"):
                state.shed += 1
                break
    except Exception:  # noqa: BLE001
        state.lost += 1
    finally:
        state.open.remove(writer)
        writer.close()


def send(route, args, n):
    t0 = time.monotonic()
    try:
        if route == "submission":
            s = smtplib.SMTP("127.0.0.1", args.submission, local_hostname="client.bench.test", timeout=60)
            s.starttls(context=ssl._create_unverified_context())  # noqa: S323 - self-signed bench certificate
            s.ehlo("client.bench.test")
            s.login(args.user, args.password)
            sender = args.user
        else:
            s = smtplib.SMTP("127.0.0.1", args.mx, local_hostname="mail.sender.test", timeout=60)
            sender = "someone@sender.test"
        s.sendmail(sender, [args.user], f"From: {sender}\r\nTo: {args.user}\r\nSubject: {route} {n}\r\n\r\nlegitimate\r\n")
        s.quit()
        return True, time.monotonic() - t0, ""
    except Exception as e:  # noqa: BLE001
        return False, time.monotonic() - t0, f"{type(e).__name__}: {e}"


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mx", type=int, required=True)
    p.add_argument("--submission", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--idle", type=int, default=10000)
    p.add_argument("--messages", type=int, default=20)
    p.add_argument("--keepalive", type=float, default=5)
    p.add_argument("--deadline", type=float, default=240)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = time.monotonic()
    before = rss_kib(args.pid)
    state, ready, stop = Idle(), asyncio.Event(), asyncio.Event()
    sem = asyncio.Semaphore(3000)  # connects and greeting pauses in flight
    holders = [asyncio.create_task(hold_one(args, i, sem, state, ready, stop)) for i in range(args.idle)]
    await asyncio.wait_for(ready.wait(), args.deadline / 2)
    open_seconds = time.monotonic() - started
    await asyncio.sleep(3)
    held = len(state.open)
    rss_held = rss_kib(args.pid)
    print(f"idle_target={args.idle}")
    print(f"idle_greeted={state.greeted}")
    print(f"idle_open={held}")
    print(f"idle_shed_while_opening={state.shed}")
    print(f"idle_failed={len(state.failed)}")
    print(f"open_seconds={open_seconds:.1f}")
    print(f"rss_before_kib={before}")
    print(f"rss_held_kib={rss_held}")
    print(f"per_conn_kib={(rss_held - before) / max(held, 1):.1f}")
    for route in ("submission", "mx"):
        results = []
        for n in range(args.messages):
            results.append(await asyncio.to_thread(send, route, args, n))
        ok = [t for good, t, _ in results if good]
        print(f"{route}_sent={len(ok)}")
        print(f"{route}_failed={len(results) - len(ok)}")
        if ok:
            print(f"{route}_median_s={sorted(ok)[len(ok) // 2]:.2f}")
            print(f"{route}_max_s={max(ok):.2f}")
        for e in sorted({e for good, _, e in results if not good})[:3]:
            print(f"# {route} error: {e}", file=sys.stderr)
    print(f"idle_open_after={len(state.open)}")
    print(f"idle_shed={state.shed}")
    print(f"idle_lost={state.lost}")
    print(f"rss_after_kib={rss_kib(args.pid)}")
    for e in sorted(set(state.failed))[:5]:
        print(f"# idle error: {e}", file=sys.stderr)
    stop.set()
    await asyncio.wait(holders, timeout=30)
    print(f"seconds={time.monotonic() - started:.1f}")


asyncio.run(main())
