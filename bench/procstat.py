#!/usr/bin/env python3
"""Tiny /proc reader used by bench/run.sh.

  procstat.py cpu PID          CPU seconds (user+sys) of PID and all its live
                               descendants, including the time of children
                               they have already reaped (cutime+cstime).
  procstat.py rss PID          VmRSS of PID in KiB.
  procstat.py machine          "BUSY TOTAL": busy and total jiffies of all CPUs
                               (/proc/stat), to tell how loaded the machine was.
  procstat.py quiet MAX_BUSY_PCT MAX_SECONDS
                               wait until the whole machine is at most MAX_BUSY_PCT
                               busy (of all CPUs, 1 s samples) or MAX_SECONDS passed;
                               prints the last sample's busy percentage.
  procstat.py wait-idle PID [MAX_SECONDS]
                               block until the process tree of PID uses (almost)
                               no CPU for a while (so that work still running
                               after the client finished, e.g. queue delivery,
                               is included in a CPU measurement), or MAX_SECONDS.

Why descendants + cutime/cstime: Postfix's master forks smtpd, cleanup, qmgr,
discard, ... and reaps them when they exit (max_idle / max_use). A process that
exited during the run is no longer in /proc, but its CPU time has been added to
master's cutime/cstime when master waited for it. Summing utime+stime+cutime+
cstime over master and every live descendant therefore counts every process the
instance ever ran. For Postern (one process) it is simply its own utime+stime.
"""
import os
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read().decode("ascii", "replace")
    # comm may contain spaces and parentheses; everything after the last ')' is fixed-format.
    rest = data[data.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); field N is rest[N-3]
    return rest


def _all_ppids():
    ppids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            rest = _stat_fields(name)
        except (OSError, ValueError):
            continue
        ppids[int(name)] = int(rest[1])  # field 4: ppid
    return ppids


def tree(pid):
    ppids = _all_ppids()
    children = {}
    for p, pp in ppids.items():
        children.setdefault(pp, []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pid):
    total = 0
    for p in tree(pid):
        try:
            rest = _stat_fields(p)
        except (OSError, ValueError):
            continue  # exited between listing and reading
        # fields 14 utime, 15 stime, 16 cutime, 17 cstime
        total += int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return total


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit(f"no VmRSS for pid {pid}")


def wait_idle(pid, max_seconds):
    # idle = at most 1 tick (10 ms) of CPU in each of 3 consecutive 0.5 s windows
    deadline = time.monotonic() + max_seconds
    quiet = 0
    last = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_ticks(pid)
        quiet = quiet + 1 if now - last <= 1 else 0
        last = now
        if quiet >= 3:
            return True
    return False


def machine():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    total = sum(v[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


def quiet(max_pct, max_seconds):
    deadline = time.monotonic() + max_seconds
    while True:
        b0, t0 = machine()
        time.sleep(1.0)
        b1, t1 = machine()
        pct = 100.0 * (b1 - b0) / max(t1 - t0, 1)
        if pct <= max_pct or time.monotonic() >= deadline:
            return pct


def main(argv):
    if len(argv) == 2 and argv[1] == "machine":
        print(*machine())
        return
    if len(argv) == 4 and argv[1] == "quiet":
        print(f"{quiet(float(argv[2]), float(argv[3])):.0f}")
        return
    if len(argv) < 3:
        raise SystemExit(__doc__)
    cmd, pid = argv[1], int(argv[2])
    if cmd == "cpu":
        print(f"{cpu_ticks(pid) / CLK_TCK:.2f}")
    elif cmd == "rss":
        print(rss_kib(pid))
    elif cmd == "wait-idle":
        ok = wait_idle(pid, float(argv[3]) if len(argv) > 3 else 30.0)
        print("idle" if ok else "busy")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
