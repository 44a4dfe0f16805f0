#!/usr/bin/env python3
"""MIME-bomb client for bench/attack-mimebomb.sh (issue 12).

  mimebomb.py --port PORT --pid PID --size MB [--arc]

Sends one small message (warm-up: the code paths are compiled and loaded), reads the server's
VmHWM (peak resident memory since start) from /proc/PID/status, then sends one message of SIZE
megabytes made of empty MIME parts ("--b" CRLF CRLF, 7 octets each), optionally with an ARC-Seal
header field (which on main made the server parse the message whole a second time), and reads
VmHWM again. Prints key=value lines: reply, peak growth in KiB, seconds.
"""
import argparse
import smtplib
import time


def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise SystemExit(f"no {key} for {pid}")


HEAD = (
    "From: a@sender.test\r\nTo: user@bench.test\r\nSubject: bomb\r\n"
    "Date: Mon, 07 Dec 2026 15:00:00 +0000\r\nMessage-ID: <bomb@sender.test>\r\n"
    # A DKIM-Signature (it need not verify): the verifier reads the message either way.
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=sender.test; s=s;\r\n"
    "\th=from:to:subject; bh=AAAA; b=AAAA\r\n"
    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n"
)
ARC = "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=fwd.test; s=s; b=AAAA\r\n"


def bomb(megabytes, arc):
    head = ((ARC if arc else "") + HEAD + "\r\n").encode()
    parts = (megabytes * 1_000_000 - len(head)) // 7
    return head + b"--b\r\n\r\n" * parts + b"--b--\r\n"


def send(port, data):
    with smtplib.SMTP("127.0.0.1", port, timeout=600) as s:
        s.ehlo("client.sender.test")
        s.mail("a@sender.test")
        s.rcpt("user@bench.test")
        code, text = s.data(data)
        return code, text.decode(errors="replace")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--arc", action="store_true")
    a = p.parse_args()
    send(a.port, (HEAD + "\r\n--b\r\n\r\n--b--\r\n").encode())
    before = vm(a.pid, "VmHWM")
    rss_before = vm(a.pid, "VmRSS")
    data = bomb(a.size, a.arc)
    started = time.monotonic()
    code, text = send(a.port, data)
    seconds = time.monotonic() - started
    after = vm(a.pid, "VmHWM")
    print(f"octets={len(data)}")
    print(f"reply={code} {text.splitlines()[0] if text else ''}")
    print(f"hwm_before_kib={before}")
    print(f"rss_before_kib={rss_before}")
    print(f"hwm_after_kib={after}")
    print(f"growth_kib={after - max(before, rss_before)}")
    print(f"seconds={seconds:.1f}")


if __name__ == "__main__":
    main()
