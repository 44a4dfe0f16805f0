#!/usr/bin/env python3
"""Helpers for bench/outbound.sh: read smtp-sink's counters, wait for NSD.

smtp-sink -c writes its running counters to stdout after every session end, QUIT and "."
as records "sess=S quit=Q mesg=M" ended by a carriage return; outbound.sh sends that stream
to a file (SINKFILE), which only ever grows.

  relaywatch.py counts SINKFILE
        print the latest counters: "SESS QUIT MESG" (0 0 0 before the first record)
  relaywatch.py wait SINKFILE TARGET TIMEOUT STALL [SOURCE_DONE_FILE]
        wait until mesg >= TARGET; print "EPOCH SESS QUIT MESG" where EPOCH is the time
        (time.time()) at which the target was first seen; polls every 10 ms.
        Exit 1 (printing the last counters with EPOCH 0) after TIMEOUT seconds, or when mesg
        has not moved for STALL seconds, or as soon as SOURCE_DONE_FILE exists and starts
        with a non-zero exit status (the client failed, so the target cannot be reached).
  relaywatch.py settle SINKFILE QUIET MAX
        wait until the counters have not changed for QUIET seconds (at most MAX seconds),
        e.g. until cached connections are closed; print "SESS QUIT MESG".
  relaywatch.py open-conns ADDR PORT
        print how many TCP connections to ADDR:PORT are established right now (client ends,
        any process; /proc/net/tcp). Connections opened during a run = sessions the sink
        counted as ended + (open at the end - open at the start), so that connections a server
        keeps open for reuse are counted too.
  relaywatch.py dns-ready ADDR PORT NAME TIMEOUT
        wait until the DNS server at ADDR:PORT (UDP) answers an MX query for NAME with at
        least one answer record; exit 1 after TIMEOUT seconds.
"""
import os
import random
import re
import socket
import struct
import sys
import time

RECORD = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)\r")


class Sink:
    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.tail = b""
        self.counts = (0, 0, 0)
        try:
            size = os.path.getsize(path)
        except OSError:
            size = 0
        # Only the last record matters: start near the end of a long file.
        self.offset = max(0, size - 256)
        self.poll()

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return self.counts
        if not data:
            return self.counts
        self.offset += len(data)
        buf = self.tail + data
        cut = buf.rfind(b"\r")
        if cut < 0:
            self.tail = buf[-256:]
            return self.counts
        # the last complete record before the last CR
        start = max(0, cut - 128)
        matches = list(RECORD.finditer(buf, start, cut + 1))
        if matches:
            m = matches[-1]
            self.counts = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        self.tail = buf[cut + 1:][-256:]
        return self.counts


def source_failed(path):
    if not path:
        return False
    try:
        with open(path) as f:
            first = f.read().split()
    except OSError:
        return False
    return bool(first) and first[0] != "0"


def wait(path, target, timeout, stall, done_file):
    sink = Sink(path)
    start = time.monotonic()
    last_mesg, last_change = sink.counts[2], start
    while True:
        s, q, m = sink.poll()
        now = time.monotonic()
        if m >= target:
            print(f"{time.time():.6f} {s} {q} {m}")
            return 0
        if m != last_mesg:
            last_mesg, last_change = m, now
        if now - start > timeout or now - last_change > stall or source_failed(done_file):
            print(f"0 {s} {q} {m}")
            return 1
        time.sleep(0.01)


def settle(path, quiet, max_seconds):
    sink = Sink(path)
    start = time.monotonic()
    last, changed = sink.counts, start
    while time.monotonic() - start < max_seconds:
        time.sleep(0.1)
        now = sink.poll()
        if now != last:
            last, changed = now, time.monotonic()
        elif time.monotonic() - changed >= quiet:
            break
    print(*last)


def open_conns(addr, port):
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            rip, rport = fields[2].split(":")
            if fields[3] != "01":  # ESTABLISHED
                continue
            if int(rport, 16) == port and socket.inet_ntoa(struct.pack("=I", int(rip, 16))) == addr:
                n += 1
    return n


def dns_query(name, qtype=15):
    qid = random.randrange(65536)
    header = struct.pack(">HHHHHH", qid, 0x0000, 1, 0, 0, 0)  # no recursion desired
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return qid, header + qname + struct.pack(">HH", qtype, 1)


def dns_ready(addr, port, name, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        qid, packet = dns_query(name)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.3)
                s.sendto(packet, (addr, port))
                reply = s.recv(4096)
            rid, flags, _, ancount = struct.unpack(">HHHH", reply[:8])
            if rid == qid and flags & 0x000F == 0 and ancount > 0:
                return 0
        except OSError:
            pass
        time.sleep(0.1)
    return 1


def main(argv):
    if len(argv) == 3 and argv[1] == "counts":
        print(*Sink(argv[2]).counts)
        return 0
    if len(argv) in (6, 7) and argv[1] == "wait":
        return wait(argv[2], int(argv[3]), float(argv[4]), float(argv[5]), argv[6] if len(argv) == 7 else None)
    if len(argv) == 5 and argv[1] == "settle":
        settle(argv[2], float(argv[3]), float(argv[4]))
        return 0
    if len(argv) == 4 and argv[1] == "open-conns":
        print(open_conns(argv[2], int(argv[3])))
        return 0
    if len(argv) == 6 and argv[1] == "dns-ready":
        return dns_ready(argv[2], int(argv[3]), argv[4], float(argv[5]))
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
