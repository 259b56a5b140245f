#!/usr/bin/python3
"""Prove docker/Dockerfile builds, on a machine without a container engine.

Reads the Dockerfile and carries out its instructions itself: each FROM of
debian:SUITE-slim becomes a fresh `mmdebstrap --variant=minbase SUITE` root
made from the machine's own Debian archive, RUN runs in that root under
chroot (a private mount namespace with /proc and /dev), COPY copies from
the build context (the files git tracks, as they are in the work tree) or,
with --from, from an earlier stage's root; ARG, USER, WORKDIR, ENTRYPOINT
and CMD are recorded. Then the final stage's entry point runs as its USER:
`starttls-scan version` and `starttls-scan help` must succeed, and ldd must
find every library. Any other instruction is an error, so the Dockerfile
cannot grow a step this proof silently skips.

What differs from a real image build: the base is made from the archive
today, not pulled by the pinned digest (there is no registry client here),
and the stages are directories, not layers.

  docker/build-rootfs.py [--keep] [--work DIR]

Needs root and mmdebstrap (apt-get install mmdebstrap). Takes several
minutes (two debootstraps, the build packages, the tuned mbedTLS, the
scanner); not part of `make test`.
"""

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def log(msg):
    print("build-rootfs: " + msg, file=sys.stderr, flush=True)


def instructions(path):
    """(keyword, argument text) per instruction, continuations joined."""
    out, cur = [], ""
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            cur += line
            kw, _, rest = cur.strip().partition(" ")
            out.append((kw.upper(), rest.strip()))
            cur = ""
    return out


def archive():
    """The machine's Debian mirror, from its apt sources."""
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        if os.path.exists(path):
            with open(path) as f:
                m = re.search(r"(?:URIs:|^deb)\s+(?:\[[^]]*\]\s+)?(http\S+)", f.read(), re.M)
            if m:
                return m.group(1)
    sys.exit("build-rootfs: no Debian archive in the apt sources")


def suite_of(image):
    m = re.fullmatch(r"debian:([a-z]+)(?:-\d{8})?-slim(?:@sha256:[0-9a-f]{64})?", image)
    if not m:
        sys.exit("build-rootfs: cannot make %r without a registry (only debian:SUITE-slim)" % image)
    return m.group(1)


def context_files():
    """What COPY . sees: the files git tracks, as they are in the work tree."""
    r = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, check=True)
    return [f for f in r.stdout.decode().split("\0") if f and os.path.lexists(os.path.join(ROOT, f))]


def copy_into(src_root, srcs, dst_root, dst, files=None):
    """COPY semantics for what the Dockerfile uses: a directory's contents
    into dst, a file into dst (dst/ for a directory)."""
    for src in srcs:
        src = src.rstrip("/") or "."
        if files is not None:
            chosen = [f for f in files if src == "." or f == src or f.startswith(src + "/")]
            if not chosen:
                sys.exit("build-rootfs: COPY %s: nothing in the context" % src)
            for f in chosen:
                rel = f if src == "." else (os.path.relpath(f, src) if f != src else os.path.basename(f))
                target = os.path.join(dst_root, dst.lstrip("/"), rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(os.path.join(src_root, f), target, follow_symlinks=False)
        else:
            s = os.path.join(src_root, src.lstrip("/"))
            target = os.path.join(dst_root, dst.lstrip("/"))
            if os.path.isdir(s):
                shutil.copytree(s, target, symlinks=True, dirs_exist_ok=True)
            else:
                if dst.endswith("/"):
                    target = os.path.join(target, os.path.basename(s))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(s, target)


def chroot_run(root, cmd, user=None):
    """Run a shell command in root, as Docker's RUN does (/bin/sh -c)."""
    shutil.copy2("/etc/resolv.conf", os.path.join(root, "etc", "resolv.conf"))
    script = ("mount -t proc proc %(r)s/proc && mount --rbind /dev %(r)s/dev && "
              "exec chroot %(u)s %(r)s /bin/sh -c %(c)s"
              % {"r": shlex.quote(root), "u": "--userspec=" + user if user else "",
                 "c": shlex.quote(cmd)})
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script]).returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dockerfile", default=os.path.join(HERE, "Dockerfile"))
    ap.add_argument("--work", help="directory for the stage roots (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the stage roots")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("build-rootfs: must run as root (mmdebstrap, chroot)")
    if not shutil.which("mmdebstrap"):
        sys.exit("build-rootfs: mmdebstrap is missing (apt-get install mmdebstrap)")

    work = args.work or tempfile.mkdtemp(prefix="stls-rootfs-")
    os.makedirs(work, exist_ok=True)
    mirror = archive()
    files = context_files()
    argv, stages, cur = {}, {}, None
    t0 = time.monotonic()
    try:
        for kw, rest in instructions(args.dockerfile):
            rest_x = re.sub(r"\$\{(\w+)\}", lambda m: argv.get(m.group(1), ""), rest)
            if kw == "ARG":
                name, _, val = rest.partition("=")
                argv[name] = val
            elif kw == "FROM":
                parts = rest_x.split()
                name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else "stage%d" % len(stages)
                root = os.path.join(work, name)
                suite = suite_of(parts[0])
                log("FROM %s: mmdebstrap --variant=minbase %s into %s" % (parts[0], suite, root))
                shutil.rmtree(root, ignore_errors=True)
                subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "--mode=root", suite, root, mirror],
                               check=True)
                cur = stages[name] = {"root": root, "user": None, "workdir": "/", "entrypoint": None, "cmd": None}
            elif kw == "COPY":
                parts = shlex.split(rest_x)
                src_stage = None
                if parts[0].startswith("--from="):
                    src_stage = parts.pop(0)[len("--from="):]
                srcs, dst = parts[:-1], parts[-1]
                log("COPY %s" % rest_x)
                if src_stage:
                    copy_into(stages[src_stage]["root"], srcs, cur["root"], dst)
                else:
                    copy_into(ROOT, srcs, cur["root"], dst, files)
            elif kw == "RUN":
                log("RUN %s" % rest_x)
                rc = chroot_run(cur["root"], "cd %s && %s" % (shlex.quote(cur["workdir"]), rest_x))
                if rc != 0:
                    sys.exit("build-rootfs: RUN failed (exit %d): %s" % (rc, rest_x))
            elif kw == "USER":
                cur["user"] = rest_x
            elif kw == "WORKDIR":
                cur["workdir"] = rest_x
                os.makedirs(os.path.join(cur["root"], rest_x.lstrip("/")), exist_ok=True)
            elif kw in ("ENTRYPOINT", "CMD"):
                import json
                cur[kw.lower()] = json.loads(rest_x)
            else:
                sys.exit("build-rootfs: instruction %s is not handled by this proof" % kw)

        # The image as `docker run` would start it.
        ep = cur["entrypoint"]
        if not ep:
            sys.exit("build-rootfs: the final stage has no ENTRYPOINT")
        ok = True
        for extra in (["version"], ["help"]):
            cmd = " ".join(shlex.quote(x) for x in ep + extra)
            log("as %s: %s" % (cur["user"], cmd))
            ok &= chroot_run(cur["root"], "cd %s && %s" % (shlex.quote(cur["workdir"]), cmd), cur["user"]) == 0
        log("ldd %s" % ep[0])
        ok &= chroot_run(cur["root"], "ldd %s && ! ldd %s | grep -q 'not found'"
                         % (shlex.quote(ep[0]), shlex.quote(ep[0]))) == 0
        # The runtime user cannot write the image's files.
        ok &= chroot_run(cur["root"], "! touch /usr/local/bin/x 2>/dev/null", cur["user"]) == 0
        size = subprocess.run(["du", "-sh", cur["root"]], capture_output=True, text=True).stdout.split()[0]
        log("%s in %.0f s; final root %s" % ("built and started" if ok else "FAILED",
                                             time.monotonic() - t0, size))
        return 0 if ok else 1
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
