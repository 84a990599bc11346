#!/usr/bin/python3
"""Markdown report of a bench/readdriven/run.sh run: report.py RESULTS.jsonl

Every number is the median over the run's rounds; every ratio is between
numbers of this run."""
import json
import statistics
import sys

CONFIGS = [
    ("main", "(a) main"),
    ("cor", "(b) cor"),
    ("hints", "(c) hints"),
    ("record", "recording run for (d)"),
    ("profile", "(d) profile"),
    ("local", "(e) local (no clonefs)"),
    ("hydrated", "(f) complete clone (clonefs, all in dest)"),
]


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def pick(recs, sec, case=None, sys_=None):
    return [r for r in recs if r.get("sec") == sec
            and (case is None or r.get("case") == case)
            and (sys_ is None or r.get("sys") == sys_)]


def med(recs, key):
    vals = [r["metrics"][key] for r in recs
            if isinstance(r["metrics"].get(key), (int, float))]
    return statistics.median(vals) if vals else None


def fmt(v, spec="%.3f"):
    return "n/a" if v is None else spec % v


def mib(b):
    return None if b is None else b / 1048576.0


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def verdict(v, limit, above=False):
    if v is None:
        return "not measured"
    ok = v >= limit if above else v <= limit
    return "met" if ok else "NOT met"


def meta(recs, case):
    for r in recs:
        if r.get("sec") == "meta" and r.get("case") == case:
            return r["metrics"]
    return {}


def main(path):
    recs = load(path)
    cfg, mach, load_, tr = meta(recs, "config"), meta(recs, "machine"), meta(recs, "load"), \
        meta(recs, "trace")
    out = []
    w = out.append
    w("# Read-driven hydration%s" % (" (quick smoke run)" if cfg.get("quick") else ""))
    w("")
    w("- clonefs: %s; checkout %s" % (cfg.get("clonefs_build", "?"), cfg.get("commit", "?")))
    w("- machine: %s, %s cores, %s GiB RAM, kernel %s; disk %s (%s)" % (
        mach.get("cpu", "?"), mach.get("nproc", "?"), mach.get("ram_gib", "?"),
        mach.get("kernel", "?"), mach.get("disk", "?"), mach.get("fstype", "?")))
    w("- rounds: %s (medians); run took %s s; load average %s at start, %s at end" % (
        cfg.get("rounds", "?"), fmt(load_.get("duration_s"), "%.0f"), load_.get("start", "?"),
        load_.get("end", "?")))
    w("- sources: nbdkit -r -U SOCK -t %s --filter=stats --filter=delay rdelay=DELAY file IMAGE, "
      "one fresh server per measurement (-t: threads per connection; the delay filter holds "
      "one for the whole delay); bytes read are the stats filter's "
      "(nbdkit rounds them to 2 decimals of their unit)" % cfg.get("nbdkit_threads", "default"))
    w("")

    # ---- 1. trace
    w("## 1. Boot-like trace")
    w("")
    if tr:
        w("Image: %s MiB ext4 made with `mkfs.ext4 -d` (%s MiB allocated): a copy of %s "
          "and random files %s. Trace: `e2fsck -fn` of the image, then `debugfs cat` of "
          "%s of its files (%s MiB), read through strace; reads whose 4 KiB blocks were read before "
          "are dropped (page cache) and contiguous reads merged up to %s KiB (readahead): "
          "**%s requests, %s MiB**, replayed in order at queue depth 1 with O_DIRECT "
          "preads aligned out to 4 KiB, every read checked against the image. "
          "Each clone is fresh (new dest file and metadata) and mounted with the "
          "defaults plus the options shown; the replay starts when the mount returns." % (
              cfg.get("boot_mib"), tr.get("image_data_mib"),
              "/" + str(cfg.get("boot_tree", "")).replace(",", ", /"),
              str(cfg.get("boot_random", "")).replace(",", " + ") + " (N x MiB)",
              tr.get("files"), tr.get("files_mib"), cfg.get("coalesce_kib"), tr.get("requests"),
              tr.get("trace_mib")))
        w("")
    delays = str(cfg.get("delays", "")).split(",") if cfg.get("delays") else []
    for d in delays:
        rows = pick(recs, "trace", d)
        if not rows and not tr:
            continue
        w("### rdelay=%s" % d)
        w("")
        w("| configuration | options | trace s | p50 ms | p99 ms | server read MiB | server reads | mount s | mount + trace s | hydrated at end MiB | data |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        t = {}
        for key, label in CONFIGS:
            rs = [r for r in rows if r.get("sys") == key]
            if not rs:
                failed = any(e.get("case", "").startswith("trace %s %s " % (d, key))
                             for e in pick(recs, "error"))
                w("| %s | | %s | | | | | | | | |" % (label, "failed (see Failures)" if failed else "not run"))
                continue
            if all(r["metrics"].get("skipped") for r in rs):
                w("| %s | | skipped: this clonefs lacks its options | | | | | | | | |" % label)
                continue
            rs = [r for r in rs if not r["metrics"].get("skipped")]
            t[key] = med(rs, "elapsed_s")
            mism = [r["metrics"].get("mismatches") for r in rs]
            data = "n/a" if any(m is None for m in mism) else \
                ("ok" if all(m == 0 for m in mism) else "**%d MISMATCHES**" % max(mism))
            opts = str(rs[0]["metrics"].get("opts", "")).replace("_", " ")
            if key == "main" and not cfg.get("main_opts_known"):
                opts = "(none: this clonefs has no such options)"
            clone = key not in ("local", "hydrated")
            w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, opts if not opts or opts.startswith("(") else "`%s`" % opts,
                fmt(t[key]), fmt(med(rs, "p50_ms"), "%.2f"), fmt(med(rs, "p99_ms"), "%.2f"),
                fmt(mib(med(rs, "src_read_bytes")), "%.1f") if clone else "",
                fmt(med(rs, "src_read_ops"), "%.0f") if clone else "",
                fmt(med(rs, "mount_s"), "%.2f") if clone else "",
                fmt(med(rs, "mount_trace_s"), "%.2f") if clone else "",
                fmt(mib(med(rs, "hydrated_end_bytes")), "%.1f") if clone else "", data))
        w("")
        dl = ratio(t.get("profile"), t.get("local"))
        ca = ratio(t.get("hints"), t.get("main"))
        w("- (d)/(e) profile / local: **%s** (target <= 1.5: %s)" % (fmt(dl, "%.2f"), verdict(dl, 1.5)))
        w("- (c)/(a) hints / main: **%s** (target <= 0.5: %s)" % (fmt(ca, "%.2f"), verdict(ca, 0.5)))
        df = ratio(t.get("profile"), t.get("hydrated"))
        if df is not None:
            w("- (d)/(f) profile / complete clone (the same FUSE path, nothing left to fetch): %s"
              % fmt(df, "%.2f"))
        ba = ratio(t.get("cor"), t.get("main"))
        if ba is not None:
            w("- (b)/(a) cor / main: %s" % fmt(ba, "%.2f"))
        w("")

    # ---- 2. seq
    rows = pick(recs, "seq", sys_="clonefs")
    w("## 2. Sequential reader")
    w("")
    w("`dd if=MNT/FILE of=/dev/null bs=1M iflag=direct` of a whole fresh clone of %s MiB of "
      "random data, from the moment the mount returns, while hydration runs; `clonefs wait` "
      "(polling every 0.05 s) runs alongside from the same moment." % cfg.get("seq_mib", "?"))
    w("")
    if rows:
        size = med(rows, "size_bytes")
        rd = med(rows, "src_read_bytes")
        amp = ratio(rd, size)
        dd, hyd = med(rows, "dd_s"), med(rows, "hydrated_s")
        ver = [r["metrics"].get("verified") for r in rows if "verified" in r["metrics"]]
        w("| rdelay | options | dd s | dd MiB/s | hydration complete s | server read MiB | read / image size | dest = source |")
        w("|---|---|---:|---:|---:|---:|---:|---|")
        opts = str(rows[0]["metrics"].get("opts", "")).replace("_", " ") or "defaults"
        w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            cfg.get("seq_delay"), opts, fmt(dd, "%.2f"), fmt(med(rows, "dd_mib_s"), "%.1f"),
            fmt(hyd, "%.2f"), fmt(mib(rd), "%.1f"), fmt(amp, "%.3f"),
            "n/a" if not ver else ("yes" if all(v == 1 for v in ver) else "**NO**")))
        w("")
        w("- source bytes read / image size: **%s** (target <= 1.05: %s)" % (
            fmt(amp, "%.3f"), verdict(amp, 1.05)))
        if dd is not None and hyd is not None:
            w("- hydration complete at %s s, the reader done at %s s: %s (target: "
              "no later than the reader: %s)" % (
                  fmt(hyd, "%.2f"), fmt(dd, "%.2f"),
                  "%.2f s %s" % (abs(hyd - dd), "after" if hyd > dd else "before"),
                  verdict(hyd - dd, 0.0)))
    else:
        w("not run")
    w("")

    # ---- 3. buffered
    w("## 3. Buffered reader")
    w("")
    w("`cat FILE > /dev/null` (buffered reads of 128 KiB at queue depth 1) of the whole %s MiB random source "
      "at rdelay=%s: a fresh clone (defaults) against the same server read through "
      "`nbdfuse MNTDIR nbd+unix:///?socket=SOCK`." % (cfg.get("seq_mib", "?"), cfg.get("buf_delay", "?")))
    w("")
    c, n = pick(recs, "buffered", sys_="clonefs"), pick(recs, "buffered", sys_="nbdfuse")
    if c or n:
        w("| reader | MiB/s | time s | server read MiB |")
        w("|---|---:|---:|---:|")
        for name, rs in (("clonefs", c), ("nbdfuse", n)):
            w("| %s | %s | %s | %s |" % (name, fmt(med(rs, "mib_s"), "%.1f"),
                                         fmt(med(rs, "time_s"), "%.2f"),
                                         fmt(mib(med(rs, "src_read_bytes")), "%.1f")))
        w("")
        r = ratio(med(c, "mib_s"), med(n, "mib_s"))
        w("- clonefs / nbdfuse: **%s** (target >= 0.9: %s)" % (fmt(r, "%.2f"), verdict(r, 0.9, True)))
    else:
        w("not run")
    w("")

    errs = pick(recs, "error")
    if errs:
        w("## Failures")
        w("")
        for e in errs:
            w("- %s (rc %s)" % (e.get("case"), e["metrics"].get("rc")))
        w("")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
