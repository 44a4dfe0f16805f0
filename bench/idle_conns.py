#!/usr/bin/env python3
"""Measure the resident memory a server needs for N idle SMTP connections.

  idle_conns.py --port 10026 --pid PID [--host 127.0.0.1] [--count 1000]
                [--settle 3] [--timeout 60] [--parallel 100]

1. reads VmRSS of PID (baseline),
2. opens COUNT TCP connections to HOST:PORT (at most PARALLEL connects in flight),
   reads the 220 greeting on each and then leaves it idle (no command sent),
3. waits SETTLE seconds, checks how many connections are still open, reads
   VmRSS again, closes everything.

Prints key=value lines (consumed by bench/run.sh):
  opened failed alive rss_before_kib rss_after_kib delta_kib per_conn_kib
Exit status is 1 if not every connection got its greeting and stayed open.
"""
import argparse
import asyncio
import resource
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


async def open_one(host, port, timeout, sem, conns, errors):
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), timeout)
        except Exception as e:  # noqa: BLE001 - report any failure
            errors.append(f"connect: {type(e).__name__}: {e}")
            return
        try:
            while True:  # a greeting may be multi-line: 220-... then 220 ...
                line = await asyncio.wait_for(reader.readline(), timeout)
                if not line:
                    raise ConnectionError("closed before greeting")
                if not line.startswith(b"220"):
                    raise ConnectionError(f"unexpected greeting {line[:80]!r}")
                if line[3:4] != b"-":
                    break
        except Exception as e:  # noqa: BLE001
            errors.append(f"greeting: {type(e).__name__}: {e}")
            writer.close()
            return
        conns.append((reader, writer))


async def run(args):
    before = rss_kib(args.pid)
    sem = asyncio.Semaphore(args.parallel)
    conns, errors = [], []
    t0 = time.monotonic()
    await asyncio.gather(*(open_one(args.host, args.port, args.timeout, sem, conns, errors)
                           for _ in range(args.count)))
    open_secs = time.monotonic() - t0
    await asyncio.sleep(args.settle)
    # the transports keep reading in the background: a connection closed by the
    # server shows up as EOF on its reader
    alive = sum(1 for r, w in conns if not r.at_eof() and not w.is_closing())
    after = rss_kib(args.pid)
    delta = after - before
    print(f"opened={len(conns)}")
    print(f"failed={len(errors)}")
    print(f"alive={alive}")
    print(f"open_seconds={open_secs:.2f}")
    print(f"rss_before_kib={before}")
    print(f"rss_after_kib={after}")
    print(f"delta_kib={delta}")
    print(f"per_conn_kib={delta / max(alive, 1):.1f}")
    for e in sorted(set(errors))[:5]:
        print(f"# error: {e}", file=sys.stderr)
    if args.hold:
        await asyncio.sleep(args.hold)
    for _, w in conns:
        w.close()
    await asyncio.sleep(0.2)
    return 0 if alive == args.count else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True, help="server process whose RSS is measured")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=60.0, help="per connect / greeting")
    p.add_argument("--parallel", type=int, default=100, help="connects in flight at once")
    p.add_argument("--hold", type=float, default=0.0, help="keep connections open this long after measuring")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(want, soft), hard), hard))
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
