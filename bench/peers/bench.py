#!/usr/bin/python3
"""Small measuring tools for the peer benchmark (standard library only).

Subcommands (each prints one JSON object on stdout unless noted):
  record RESULTS --sec S --case C --sys Y --round N [--metrics FILE] [k=v ...]
      Appends one result line to RESULTS (JSON lines). --metrics reads a JSON
      object (a file, or '-' for stdin) whose numeric fields are merged in.
  fio FIO_JSON
      Summarises a fio --output-format=json file: MiB/s, IOPS, clat mean and
      p50/p99/p99.9 in microseconds, for each direction that moved data.
  ttfb --file PATH [--timeout S] [--bg] -- CMD ...
      Runs CMD (a mount command), then reads the first 4 KiB of PATH until it
      returns data. Reports the time from starting CMD to that first byte.
      --bg: start CMD without waiting for it (for foreground daemons).
  fsync --file PATH --count N [--stride B] [--seed S] [--sync fdatasync|fsync]
        [--odirect 0|1]
      Per iteration: pwrite 4 KiB of fresh random bytes at an offset, then
      time fdatasync. --odirect 1 opens with O_DIRECT (aligned buffer). --stride 0: random 4 KiB-aligned offsets anywhere;
      --stride B: each iteration writes at the start of a different B-sized
      block (distinct blocks, random order), so every write lands in a region
      not written before.
  status JSON_FILE
      Extracts hydrated/total regions, region size and hydrated bytes from a
      `clonefs status --json` document, tolerant of field naming.
  machine
      Describes the machine: CPU, cores, RAM, kernel, disk under $WORK.
  vm PID
      VmHWM and VmRSS of a process in KiB (from /proc/PID/status).
"""
import errno
import json
import mmap
import os
import random
import subprocess
import sys
import time


def pct(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def parse_kv(items):
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


def cmd_record(argv):
    path = argv.pop(0)
    rec = {"metrics": {}}
    rest = []
    while argv:
        a = argv.pop(0)
        if a in ("--sec", "--case", "--sys", "--round"):
            rec[a[2:]] = argv.pop(0)
        elif a == "--metrics":
            src = argv.pop(0)
            text = sys.stdin.read() if src == "-" else open(src).read()
            text = text.strip()
            if text:
                rec["metrics"].update(json.loads(text))
        else:
            rest.append(a)
    rec["metrics"].update(parse_kv(rest))
    if "round" in rec:
        rec["round"] = int(rec["round"])
    rec["time"] = time.time()
    with open(path, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")


def cmd_fio(argv):
    with open(argv[0]) as f:
        text = f.read()
    # fio may print warnings before the JSON document.
    doc = json.loads(text[text.index("{"):])
    job = doc["jobs"][0]
    out = {}
    for d in ("read", "write"):
        s = job.get(d, {})
        if not s or s.get("io_bytes", 0) == 0:
            continue
        out[d + "_mib_s"] = round(s["bw_bytes"] / 1048576.0, 2)
        out[d + "_iops"] = round(s["iops"], 1)
        clat = s.get("clat_ns", {})
        out[d + "_clat_mean_us"] = round(clat.get("mean", 0) / 1000.0, 2)
        pcts = clat.get("percentile", {})
        for key, name in (("50.000000", "p50"), ("99.000000", "p99"), ("99.900000", "p99_9")):
            if key in pcts:
                out[d + "_clat_" + name + "_us"] = round(pcts[key] / 1000.0, 2)
    out["runtime_s"] = round(job.get("job_runtime", 0) / 1000.0, 2)
    print(json.dumps(out, sort_keys=True))


def read_first_block(path):
    """Returns the number of bytes read at offset 0, or 0 if not ready yet."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return 0
    try:
        return len(os.pread(fd, 4096, 0))
    except OSError:
        return 0
    finally:
        os.close(fd)


def cmd_ttfb(argv):
    path, timeout, bg = None, 30.0, False
    while argv and argv[0] != "--":
        a = argv.pop(0)
        if a == "--file":
            path = argv.pop(0)
        elif a == "--timeout":
            timeout = float(argv.pop(0))
        elif a == "--bg":
            bg = True
    cmd = argv[1:]
    t0 = time.perf_counter()
    if bg:
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
        t_cmd = 0.0
    else:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        t_cmd = time.perf_counter() - t0
        if r.returncode != 0:
            sys.stderr.write(r.stdout + r.stderr)
            print(json.dumps({"error": "mount command failed rc=%d" % r.returncode}))
            sys.exit(1)
    while read_first_block(path) == 0:
        if time.perf_counter() - t0 > timeout:
            print(json.dumps({"error": "no data from %s within %.0f s" % (path, timeout)}))
            sys.exit(1)
        time.sleep(0.001)
    t1 = time.perf_counter()
    print(json.dumps({"mount_cmd_s": round(t_cmd, 4), "ttfb_s": round(t1 - t0, 4)}))


def cmd_fsync(argv):
    opts = {"--stride": "0", "--seed": "1", "--sync": "fdatasync", "--odirect": "0"}
    while argv:
        a = argv.pop(0)
        opts[a] = argv.pop(0)
    path, count = opts["--file"], int(opts["--count"])
    stride, rng = int(opts["--stride"]), random.Random(int(opts["--seed"]))
    sync = os.fsync if opts["--sync"] == "fsync" else os.fdatasync
    direct = opts["--odirect"] == "1"
    fd = os.open(path, os.O_RDWR | (os.O_DIRECT if direct else 0))
    buf = mmap.mmap(-1, 4096)  # page aligned, as O_DIRECT needs
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        if stride > 0:
            blocks = size // stride
            if blocks < count:
                raise SystemExit("fsync: only %d blocks of %d bytes, need %d" % (blocks, stride, count))
            offsets = [b * stride for b in rng.sample(range(blocks), count)]
        else:
            offsets = [rng.randrange(size // 4096) * 4096 for _ in range(count)]
        sync(fd)
        syncs, totals = [], []
        for off in offsets:
            buf[:] = rng.randbytes(4096)
            t0 = time.perf_counter()
            if os.pwrite(fd, buf, off) != 4096:
                raise SystemExit("fsync: short write at %d" % off)
            t1 = time.perf_counter()
            sync(fd)
            t2 = time.perf_counter()
            syncs.append((t2 - t1) * 1e6)
            totals.append((t2 - t0) * 1e6)
    finally:
        os.close(fd)
    syncs.sort()
    totals.sort()
    print(json.dumps({
        "count": count,
        "sync_p50_us": round(pct(syncs, 50), 1),
        "sync_p99_us": round(pct(syncs, 99), 1),
        "sync_mean_us": round(sum(syncs) / len(syncs), 1),
        "write_sync_p50_us": round(pct(totals, 50), 1),
        "write_sync_p99_us": round(pct(totals, 99), 1),
        "write_sync_mean_us": round(sum(totals) / len(totals), 1),
    }, sort_keys=True))


def walk(node, prefix=""):
    """Yields (dotted_key, value) for every scalar in a JSON tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, prefix + str(k).lower() + ".")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, prefix + str(i) + ".")
    else:
        yield prefix[:-1], node


def status_fields(doc):
    flat = {k: v for k, v in walk(doc) if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def find(cands):
        for c in cands:
            for k, v in flat.items():
                if k == c or k.endswith("." + c):
                    return v
        return None

    # Schema of docs/control.md first, then tolerant fallbacks.
    out = {
        "pid": find(["pid"]),
        "hydrated_regions": find(["regions.hydrated", "hydrated_regions", "regions_hydrated", "regions.hydrated",
                                  "hydrated.regions", "hydrated"]),
        "total_regions": find(["regions.total", "total_regions", "regions_total", "regions.total", "nr_regions",
                               "region_count", "total.regions"]),
        "region_size": find(["region_size_bytes", "region_size", "region_bytes"]),
        "hydrated_bytes": find(["bytes.hydrated", "hydrated_bytes", "bytes_hydrated"]),
        "copy_rate": find(["copy_rate_bytes_per_s"]),
        "hydrating_regions": find(["regions.hydrating", "hydrating_regions", "regions_hydrating", "hydrating",
                                   "in_flight"]),
    }
    strs = {k: v for k, v in walk(doc) if isinstance(v, str)}
    for k, v in strs.items():
        if k.endswith("mode"):
            out["mode"] = v
    done = doc.get("hydration_done") if isinstance(doc, dict) else None
    for k, v in walk(doc):
        if done is None and isinstance(v, bool) and ("done" in k or "complete" in k):
            done = v
    if done is None and out["hydrated_regions"] is not None and out["total_regions"]:
        done = out["hydrated_regions"] >= out["total_regions"]
    out["done"] = done
    return out


def cmd_status(argv):
    text = open(argv[0]).read() if argv[0] != "-" else sys.stdin.read()
    print(json.dumps(status_fields(json.loads(text)), sort_keys=True))


def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def cmd_machine(argv):
    work = os.environ.get("WORK", "/var/tmp")
    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    df = run(["df", "-PT", work]).splitlines()
    dev, fstype, size = "", "", ""
    if len(df) > 1:
        parts = df[1].split()
        dev, fstype, size = parts[0], parts[1], "%.0f GiB" % (int(parts[2]) / 1048576.0)
    disk = ""
    base = os.path.basename(os.path.realpath(dev)) if dev.startswith("/dev/") else ""
    if base:
        disk = run(["lsblk", "-dno", "NAME,SIZE,ROTA,MODEL", "/dev/" + base]) or base
        sched = "/sys/block/%s/queue/scheduler" % base
        if os.path.exists(sched):
            disk += " scheduler=" + open(sched).read().strip()
    first = lambda s: s.splitlines()[0] if s else ""
    print(json.dumps({
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_kib / 1048576.0, 1),
        "kernel": os.uname().release,
        "os": first(run(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"])),
        "work_dir": work,
        "work_fs": "%s on %s (%s)" % (fstype, dev, size),
        "disk": disk,
        "fio": first(run(["fio", "--version"])),
        "qemu": first(run(["qemu-storage-daemon", "--version"])),
        "nbdkit": first(run(["nbdkit", "--version"])),
        "nbdfuse": first(run(["nbdfuse", "--version"])),
    }, sort_keys=True))


def cmd_vm(argv):
    out = {}
    with open("/proc/%s/status" % argv[0]) as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                k, v = line.split(":", 1)
                out[k.lower() + "_kib"] = int(v.split()[0])
    print(json.dumps(out, sort_keys=True))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmds = {"record": cmd_record, "fio": cmd_fio, "ttfb": cmd_ttfb, "fsync": cmd_fsync,
            "status": cmd_status, "machine": cmd_machine, "vm": cmd_vm}
    name = sys.argv[1]
    if name not in cmds:
        sys.exit("unknown subcommand %s\n%s" % (name, __doc__))
    cmds[name](sys.argv[2:])


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(errno.EPIPE)
