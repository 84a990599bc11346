#!/usr/bin/python3
"""Turns strace logs of programs reading an image file into a read trace.

  mktrace.py --image PATH [--coalesce-kib K] [--no-cache-model] STRACE... > TRACE

Each STRACE is the output of
  strace -f -qq -y -s 0 -e trace=openat,pread64,preadv,preadv2,read,lseek -o STRACE CMD
(-y names each descriptor's file, so only reads of --image are kept; read()
is placed by following lseek and earlier reads). The logs are taken in the
order given, each in its own order.

The programs (e2fsck, debugfs) read 4 KiB blocks one by one, through their
own small caches; a booting kernel reads through the page cache and reads
ahead. So, unless --no-cache-model:
  - a read whose 4 KiB blocks were all read before is dropped (the page
    cache has them);
  - a read that starts where the previous kept read ended is merged into it,
    up to --coalesce-kib (default 128, the default read_ahead_kb).
Prints "OFFSET LENGTH" per line, in order; a summary goes to stderr.
"""
import re
import sys

BLOCK = 4096

CALL = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")
UNFINISHED = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(.*) <unfinished \.\.\.>$")
RESUMED = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+<\.\.\. (\w+) resumed>(.*)$")
FD = re.compile(r"^(\d+)<(.*?)>")


def reads_of(path, image):
    """Yields (offset, length) of the reads of image in one strace log."""
    pos = {}        # (pid, fd) -> file position, for read()
    pending = {}    # pid -> text of an unfinished call
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = UNFINISHED.match(line)
            if m:
                pending[m.group(1)] = m.group(2)
                continue
            m = RESUMED.match(line)
            if m:
                head = pending.pop(m.group(1), None)
                if head is None:
                    continue
                line = "%s %s%s" % (m.group(1), head, m.group(3))
            m = CALL.match(line)
            if not m:
                continue
            pid, name, args, ret = m.group(1), m.group(2), m.group(3), int(m.group(4))
            if name == "openat":
                fd = FD.match(line.split("= ", 1)[1].strip()) if ret >= 0 else None
                if fd and fd.group(2) == image:
                    pos[(pid, int(fd.group(1)))] = 0
                continue
            fdm = FD.match(args)
            if not fdm or fdm.group(2) != image or ret < 0:
                continue
            key = (pid, int(fdm.group(1)))
            if name == "lseek":
                pos[key] = ret
            elif name == "read":
                if ret > 0:
                    yield pos.get(key, 0), ret
                pos[key] = pos.get(key, 0) + ret
            elif name in ("pread64", "preadv", "preadv2"):
                fields = [x.strip() for x in args.rsplit(",", 3)]
                off = int(fields[-1]) if name == "pread64" else int(fields[-2])
                if ret > 0:
                    yield off, ret


def main(argv):
    image, coalesce, model, logs = None, 128 * 1024, True, []
    while argv:
        a = argv.pop(0)
        if a == "--image":
            image = argv.pop(0)
        elif a == "--coalesce-kib":
            coalesce = int(argv.pop(0)) * 1024
        elif a == "--no-cache-model":
            model = False
        else:
            logs.append(a)
    if not image or not logs:
        sys.exit(__doc__)
    raw, raw_bytes, out = 0, 0, []
    cached = set()
    for log in logs:
        for off, length in reads_of(log, image):
            raw += 1
            raw_bytes += length
            if not model:
                out.append([off, length])
                continue
            first, last = off // BLOCK, (off + length - 1) // BLOCK
            blocks = range(first, last + 1)
            if all(b in cached for b in blocks):
                continue
            cached.update(blocks)
            if out and out[-1][0] + out[-1][1] == off and out[-1][1] + length <= coalesce:
                out[-1][1] += length
            else:
                out.append([off, length])
    for off, length in out:
        print(off, length)
    print("mktrace: %d reads (%.1f MiB) in the logs, %d in the trace (%.1f MiB)"
          % (raw, raw_bytes / 1048576.0, len(out), sum(l for _, l in out) / 1048576.0),
          file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
