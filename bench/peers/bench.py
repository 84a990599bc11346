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
  nbdstats STATSFILE
      Bytes and requests an nbdkit stats filter counted (its statsfile=,
      written when nbdkit exits): src_read_bytes, src_read_ops, src_extents_ops.
  iolog --out LOG --size BYTES --count N [--split K] [--align B] [--bs B] [--seed S]
      A fio iolog (replay with --read_iolog=LOG --replay_redirect=FILE) of N
      reads of --bs bytes at distinct random multiples of --align below
      --size, so no read lands in a block (a qcow2 cluster) read before.
      --split K: the first K reads go to LOG, the rest to LOG.2.
  scattered PATH --size-mib M --extents N [--extent-mib E] [--seed S]
      A sparse image of M MiB holding N extents of E MiB of random data at
      distinct random E-aligned offsets (seeded: the same image every time).
  watch (--socket CONTROL_SOCK | --clonefs BIN --mnt MNT) --t0 EPOCH_S [--interval S]
        [--timeout S] [--until FRACTION] [--outage-at FRACTION --outage-flag F --outage-s S]
      Polls the daemon's stats-json on its control socket (no commit), or
      `clonefs status --json MNT` (commits), until hydration is done or has reached
      FRACTION of the image. With --outage-*: once FRACTION is hydrated it
      creates F (an nbdkit error filter's error-file: the source fails every
      request), removes it S seconds later, and notes the source link's state
      just before. Reports times from EPOCH_S and the link's states and
      error/retry/reconnect counts.
"""
import errno
import json
import mmap
import os
import random
import re
import socket
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
    out["image_size"] = find(["image_size", "bytes.total"])
    out["copy_failures"] = find(["failures.copy"])
    if isinstance(doc, dict):
        out["passthrough"] = doc.get("passthrough")
        fz = doc.get("fuse")
        if isinstance(fz, dict):
            for k in ("opens", "passthrough_opens", "read_requests", "write_requests",
                      "uring_requests"):
                if isinstance(fz.get(k), (int, float)):
                    out["fuse_" + k] = fz[k]
            if isinstance(fz.get("transport"), str):
                out["fuse_transport"] = fz["transport"]
    link = doc.get("source_connection") if isinstance(doc, dict) else None
    if isinstance(link, dict):
        out["src_state"] = link.get("state")
        for k in ("errors", "retries", "reconnects"):
            if isinstance(link.get(k), (int, float)):
                out["src_" + k] = link[k]
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
        "nbdcopy": first(run(["nbdcopy", "--version"])),
    }, sort_keys=True))


def cmd_vm(argv):
    out = {}
    with open("/proc/%s/status" % argv[0]) as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                k, v = line.split(":", 1)
                out[k.lower() + "_kib"] = int(v.split()[0])
    print(json.dumps(out, sort_keys=True))


UNITS = {"b": 1, "byte": 1, "bytes": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
         "tib": 1 << 40, "pib": 1 << 50, "eib": 1 << 60}


def cmd_nbdstats(argv):
    """Parses lines like 'read: 16 ops, 0.104581 s, 4.00 MiB, 38.25 MiB/s op, ...'.
    nbdkit prints sizes rounded to two decimals of their unit: exact enough
    for a report."""
    out = {"src_read_bytes": 0, "src_read_ops": 0, "src_extents_ops": 0}
    try:
        text = open(argv[0]).read()
    except OSError as e:
        print(json.dumps({"error": "no nbdkit stats: %s" % e}))
        return
    for line in text.splitlines():
        m = re.match(r"^(\w+): (\d+) ops, [\d.]+ s(?:, ([\d.]+) (\w+))?", line)
        if not m:
            continue
        op, ops = m.group(1), int(m.group(2))
        if op == "read":
            out["src_read_ops"] = ops
            if m.group(3):
                out["src_read_bytes"] = int(float(m.group(3)) * UNITS.get(m.group(4).lower(), 1))
        elif op == "extents":
            out["src_extents_ops"] = ops
    print(json.dumps(out, sort_keys=True))


def opts_of(argv, defaults):
    opts = dict(defaults)
    while argv:
        a = argv.pop(0)
        if not a.startswith("--"):
            sys.exit("unexpected argument %s" % a)
        opts[a[2:]] = argv.pop(0)
    return opts


def cmd_iolog(argv):
    o = opts_of(argv, {"align": "65536", "bs": "4096", "seed": "1", "split": ""})
    align, bs, size = int(o["align"]), int(o["bs"]), int(o["size"])
    slots = size // align
    count = min(int(o["count"]), slots)
    picks = random.Random(int(o["seed"])).sample(range(slots), count)
    split = min(int(o["split"]), count) if o["split"] else count
    parts = [(o["out"], picks[:split])]
    if o["split"]:
        parts.append((o["out"] + ".2", picks[split:]))
    for path, offs in parts:
        with open(path, "w") as f:
            f.write("fio version 2 iolog\nFILE add\nFILE open\n")
            for s in offs:
                f.write("FILE read %d %d\n" % (s * align, bs))
            f.write("FILE close\n")
    print(json.dumps({"ios": [len(p[1]) for p in parts]}))


def cmd_scattered(argv):
    path = argv.pop(0)
    o = opts_of(argv, {"extent-mib": "1", "seed": "7"})
    mib, n, ext = int(o["size-mib"]), int(o["extents"]), int(o["extent-mib"])
    slots = mib // ext
    if n > slots:
        sys.exit("scattered: %d extents of %d MiB do not fit in %d MiB" % (n, ext, mib))
    rng = random.Random(int(o["seed"]))
    with open(path, "wb") as f:
        f.truncate(mib << 20)
        for s in sorted(rng.sample(range(slots), n)):
            f.seek(s * ext << 20)
            for _ in range(ext):
                f.write(os.urandom(1 << 20))
        f.flush()
        os.fsync(f.fileno())


def clonefs_status(binary, mnt):
    try:
        r = subprocess.run([binary, "status", mnt, "--json"], capture_output=True, text=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    try:
        return status_fields(json.loads(r.stdout))
    except ValueError:
        return None


def clonefs_stats(sock_path):
    """The daemon's `stats-json` over its control socket (docs/control.md):
    the status document without the commit that `clonefs status` makes first,
    so polling it does not change what is measured."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(sock_path)
        s.sendall(b"stats-json\n")
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    except OSError:
        return None
    finally:
        s.close()
    lines = b"".join(chunks).decode("utf-8", "replace").split("\n")
    if not lines or lines[0] != "ok" or "." not in lines:
        return None
    body = [l[1:] if l.startswith("..") else l for l in lines[1:lines.index(".")]]
    try:
        return status_fields(json.loads("\n".join(body)))
    except ValueError:
        return None


def cmd_watch(argv):
    o = opts_of(argv, {"interval": "0.2", "timeout": "600", "until": "1.0", "outage-at": "",
                       "outage-flag": "", "outage-s": "0", "socket": "", "clonefs": "clonefs"})
    t0, interval, timeout = float(o["t0"]), float(o["interval"]), float(o["timeout"])
    until = float(o["until"])
    outage_at = float(o["outage-at"]) if o["outage-at"] else None
    flag, outage_s = o["outage-flag"], float(o["outage-s"])
    samples = []  # (seconds since t0, hydrated fraction, hydrated bytes)
    out = {"done": 0, "status_failures": 0}
    states = []
    t_on = t_off = None
    counts = {}
    size = None
    try:
        while True:
            before = time.time()
            if before - t0 > timeout:
                out["timeout"] = 1
                break
            if o["socket"]:
                st = clonefs_stats(o["socket"])
            else:
                st = clonefs_status(o["clonefs"], o["mnt"])
            now = (before + time.time()) / 2  # when the figures were taken, near enough
            if st is None:
                out["status_failures"] += 1
            else:
                size = st.get("image_size") or size
                hb = st.get("hydrated_bytes")
                if hb is None and st.get("hydrated_regions") is not None and st.get("region_size"):
                    hb = st["hydrated_regions"] * st["region_size"]
                frac = (hb / size) if (hb is not None and size) else 0.0
                if st.get("done"):
                    frac = 1.0
                samples.append((now - t0, frac, hb or 0))
                if st.get("src_state") and (not states or states[-1] != st["src_state"]):
                    states.append(st["src_state"])
                for k in ("src_errors", "src_retries", "src_reconnects"):
                    if st.get(k) is not None:
                        counts[k] = max(counts.get(k, 0), st[k])
                if st.get("done"):
                    out["done"] = 1
                    break
                if outage_at is not None and t_on is None and frac >= outage_at:
                    open(flag, "w").close()
                    t_on = time.time()
                    out["outage_on_s"] = round(t_on - t0, 3)
                    out["outage_on_fraction"] = round(frac, 4)
                if t_on is not None and t_off is None and time.time() - t_on >= outage_s:
                    out["outage_state"] = st.get("src_state") or "n/a"
                    os.unlink(flag)
                    t_off = time.time()
                    out["outage_off_s"] = round(t_off - t0, 3)
                outage_over = outage_at is None or t_off is not None
                if frac >= until and outage_over:
                    break
            pause = interval
            if t_on is not None and t_off is None:
                pause = max(0.0, min(interval, t_on + outage_s - time.time()))
            time.sleep(pause)
    finally:
        if t_on is not None and t_off is None and os.path.exists(flag):
            os.unlink(flag)
    if samples:
        out["last_s"] = round(samples[-1][0], 3)
        out["last_fraction"] = round(samples[-1][1], 4)
    out["samples"] = len(samples)
    out["src_states"] = ">".join(states) if states else "n/a"
    out.update(counts)
    print(json.dumps(out, sort_keys=True))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmds = {"record": cmd_record, "fio": cmd_fio, "ttfb": cmd_ttfb, "fsync": cmd_fsync,
            "status": cmd_status, "machine": cmd_machine, "vm": cmd_vm,
            "nbdstats": cmd_nbdstats, "iolog": cmd_iolog, "scattered": cmd_scattered,
            "watch": cmd_watch}
    name = sys.argv[1]
    if name not in cmds:
        sys.exit("unknown subcommand %s\n%s" % (name, __doc__))
    cmds[name](sys.argv[2:])


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(errno.EPIPE)
