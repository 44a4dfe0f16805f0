#!/usr/bin/env python3
"""Client for bench/attack-delivery.sh (issue 12): submits N messages of SIZE MiB as an
authenticated user (STARTTLS, AUTH PLAIN) and reports the sender's VmHWM growth once the peer
has them all.

  delivery-memory.py --port PORT --pid PID --count N --size MIB --peer-dir DIR
"""
import argparse
import glob
import smtplib
import ssl
import time


def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise SystemExit(f"no {key} for {pid}")


def message(i, mib):
    head = (f"From: user@bench.test\r\nTo: someone@peer.test\r\nSubject: big {i}\r\n"
            f"Date: Mon, 07 Dec 2026 15:00:00 +0000\r\nMessage-ID: <big-{i}@bench.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    line = (b"0123456789" * 7 + b"abcdef") + b"\r\n"
    return head + line * (mib * 1024 * 1024 // len(line))


def delivered(peer_dir):
    return len(glob.glob(f"{peer_dir}/**/new/*", recursive=True))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--size", type=int, default=20)
    p.add_argument("--peer-dir", required=True)
    a = p.parse_args()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", a.port, timeout=600) as s:
        s.starttls(context=ctx)
        s.login("user@bench.test", "bench-Password-4711")
        s.sendmail("user@bench.test", ["someone@peer.test"], message(0, 1))
    deadline = time.monotonic() + 120
    while delivered(a.peer_dir) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    before = max(vm(a.pid, "VmHWM"), vm(a.pid, "VmRSS"))
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", a.port, timeout=600) as s:
        s.starttls(context=ctx)
        s.login("user@bench.test", "bench-Password-4711")
        for i in range(1, a.count + 1):
            s.sendmail("user@bench.test", ["someone@peer.test"], message(i, a.size))
    deadline = time.monotonic() + 900
    while delivered(a.peer_dir) < a.count + 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    print(f"delivered={delivered(a.peer_dir) - 1}")
    print(f"hwm_before_kib={before}")
    print(f"hwm_after_kib={vm(a.pid, 'VmHWM')}")
    print(f"growth_kib={vm(a.pid, 'VmHWM') - before}")
    print(f"seconds={time.monotonic() - started:.1f}")


if __name__ == "__main__":
    main()
