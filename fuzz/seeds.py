#!/usr/bin/env python3
"""Builds seed inputs for the fuzz targets from fixtures/corpus, the repo's
config samples and a few crafted files (small qcow2 / GPT images, gzip and
zstd framings). Usage: fuzz/seeds.py OUTDIR  ->  OUTDIR/<target>/..."""

import gzip
import hashlib
import io
import os
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "fixtures", "corpus")
OUT = sys.argv[1]

# Must match backproof::fuzzing::INSPECT_NAMES.
NAMES = ["x.dump", "x.sql", "x.sql.gz", "x.sql.zst", "x.tar", "x.tar.gz", "x.qcow2",
         "x.img", "x.ibd", "ibdata1", "toc.dat", "backup_label",
         "xtrabackup_checkpoints", "x.bin", "x.zst", "undo001"]

MAX = {"inspect": 262144, "pgdump": 131072, "tar": 262144, "image": 262144,
       "text": 65536, "compressed": 131072, "config": 16384}


def put(target, data):
    data = data[: MAX[target]]
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def fixtures():
    for dirpath, _, files in os.walk(FIX):
        for f in files:
            p = os.path.join(dirpath, f)
            if f == "EXPECT" or f.endswith(".frm") or f.endswith(".opt"):
                continue
            yield p, f


def head_tail(data, n):
    return data if len(data) <= 2 * n else data[:n] + data[-n:]


def name_byte(f):
    for i, n in enumerate(NAMES):
        if f == n:
            return i
    for i, n in sorted(enumerate(NAMES), key=lambda x: -len(x[1])):
        if n.startswith("x.") and f.endswith(n[1:]):
            return i
    return NAMES.index("x.bin")


def qcow2_seeds():
    out = []
    with tempfile.TemporaryDirectory() as t:
        raw = os.path.join(t, "r.raw")
        with open(raw, "wb") as f:
            f.write(b"\0" * 4096 + os.urandom(3000) + b"\0" * 20000 + b"data" * 500)
        for cs, extra in [("512", []), ("4096", []), ("512", ["-c"])]:
            q = os.path.join(t, "q.qcow2")
            try:
                subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", *extra,
                                "-o", f"cluster_size={cs}", raw, q], check=True,
                               capture_output=True)
                out.append(open(q, "rb").read())
                subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", *extra,
                                "-o", f"cluster_size={cs},compat=0.10", raw, q], check=True,
                               capture_output=True)
                out.append(open(q, "rb").read())
            except (OSError, subprocess.CalledProcessError):
                pass
    return out


def gpt_image(sectors=128, ext=True, count=128):
    """A tiny GPT disk: protective MBR, primary header + `count` entries, one
    partition holding an ext superblock, backup entries + header."""
    S = 512
    img = bytearray(sectors * S)
    # Protective MBR.
    img[446 + 4] = 0xEE
    img[446 + 8:446 + 16] = struct.pack("<II", 1, sectors - 1)
    img[510:512] = b"\x55\xaa"
    table = -(-count * 128 // S)
    first, last = 2 + table, sectors - 2 - table
    entry = bytearray(128)
    entry[0:16] = b"\x0f\xc6\x3d\xaf\x84\x83\x47\x72\x8e\x79\x3d\x69\xd8\x47\x7d\xe4"
    entry[16:32] = os.urandom(16)
    entry[32:48] = struct.pack("<QQ", first, last)
    entries = (bytes(entry) + b"\0" * (count - 1) * 128).ljust(table * S, b"\0")
    ecrc = zlib.crc32(entries[:count * 128])

    def header(my, alt, entries_lba):
        h = bytearray(92)
        h[0:8] = b"EFI PART"
        h[8:12] = struct.pack("<I", 0x00010000)
        h[12:16] = struct.pack("<I", 92)
        h[24:40] = struct.pack("<QQ", my, alt)
        h[40:56] = struct.pack("<QQ", first, last)
        h[56:72] = os.urandom(16)
        h[72:92] = struct.pack("<QIII", entries_lba, count, 128, ecrc)
        h[16:20] = struct.pack("<I", zlib.crc32(bytes(h)))
        return bytes(h)

    img[S:S + 92] = header(1, sectors - 1, 2)
    img[2 * S:2 * S + len(entries)] = entries
    img[(sectors - 1 - table) * S:(sectors - 1) * S] = entries
    img[(sectors - 1) * S:(sectors - 1) * S + 92] = header(sectors - 1, 1, sectors - 1 - table)
    if ext:
        sb = first * S + 1024
        img[sb + 4:sb + 8] = struct.pack("<I", (last - first + 1) // 2)
        img[sb + 24:sb + 28] = struct.pack("<I", 0)
        img[sb + 56:sb + 58] = struct.pack("<H", 0xEF53)
    return bytes(img)


def ext_image():
    img = bytearray(64 * 1024)
    img[1024 + 4:1024 + 8] = struct.pack("<I", 64)
    img[1024 + 56:1024 + 58] = struct.pack("<H", 0xEF53)
    return bytes(img)


def pg_tar_small(path):
    """The pg_dump tar fixture with toc.dat intact and other members cut."""
    src = tarfile.open(path)
    buf = io.BytesIO()
    dst = tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT)
    for m in src.getmembers():
        data = src.extractfile(m).read() if m.isfile() else b""
        if m.name != "toc.dat":
            data = data[:64]
        m.size = len(data)
        dst.addfile(m, io.BytesIO(data))
    dst.close()
    return buf.getvalue()


def zst(data, *args):
    try:
        return subprocess.run(["zstd", "-q", "-c", *args], input=data, check=True,
                              capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def main():
    for p, f in fixtures():
        data = open(p, "rb").read()
        if not data:
            continue
        # inspect: the name byte, then the file (cut to fit).
        if len(data) <= MAX["inspect"] or f.endswith((".sql", ".tar", ".dump")):
            body = data if len(data) <= MAX["inspect"] - 1 else head_tail(data, 64 * 1024)
            put("inspect", bytes([name_byte(f)]) + body)
        if f.endswith(".dump") or f == "toc.dat":
            put("pgdump", data)
        if f.endswith(".tar"):
            put("tar", data)
        if f.endswith(".tar.gz"):
            try:
                put("tar", gzip.decompress(data))
            except (OSError, EOFError, zlib.error):
                pass
            put("compressed", b"\0" + data)
        if f.endswith(".gz") and not f.endswith(".tar.gz"):
            put("compressed", b"\0" + data)
        if f.endswith(".zst"):
            put("compressed", b"\1" + data)
        if f.endswith(".sql"):
            put("text", head_tail(data, 8192))
        if f in ("xtrabackup_checkpoints", "backup-my.cnf", "xtrabackup_info"):
            put("text", data)
        if f.endswith(".ibd"):
            put("image", data)
            put("inspect", bytes([NAMES.index("x.ibd")]) + data)
        if f == "ibdata1":
            put("image", data[: 16384 * 4])
        if f.endswith(("SUMS", ".sha256", ".md5", ".b3")):
            put("config", data)
        if f.endswith(".qcow2") and len(data) <= MAX["image"]:
            put("image", data)
    # pg tar with small members.
    pgtar = os.path.join(FIX, "clean/postgres/appdb-2026-11-20T0300.tar")
    small = pg_tar_small(pgtar)
    put("tar", small)
    put("inspect", bytes([NAMES.index("x.tar")]) + small)
    # Images.
    for q in qcow2_seeds():
        put("image", q)
        put("inspect", bytes([NAMES.index("x.qcow2")]) + q)
    for img in [gpt_image(), gpt_image(80, ext=False), gpt_image(24, count=4),
                gpt_image(12, ext=False, count=4), ext_image()]:
        put("image", img)
        put("inspect", bytes([NAMES.index("x.img")]) + img)
    # Text records.
    label = (b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
             b"CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\n"
             b"BACKUP FROM: primary\nSTART TIME: 2026-11-20 03:00:00 UTC\n"
             b"LABEL: pg_basebackup base backup\nSTART TIMELINE: 1\n")
    put("text", label)
    put("inspect", bytes([NAMES.index("backup_label")]) + label)
    ckp = b"backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 47170\nlast_lsn = 47179\n"
    put("text", ckp)
    put("inspect", bytes([NAMES.index("xtrabackup_checkpoints")]) + ckp)
    # Compressed framings: members, padding, zstd with and without checksums.
    g = gzip.compress(b"hello ") + gzip.compress(b"world" * 100)
    put("compressed", b"\0" + g)
    put("compressed", b"\0" + g + b"\0" * 600)
    put("inspect", bytes([NAMES.index("x.sql.gz")]) + gzip.compress(
        b"-- MySQL dump 10.13\n\n-- Dump completed on 2026-11-20  3:00:01\n"))
    for args in [[], ["--no-check"], ["--long=27"], ["-19"]]:
        z = zst(b"-- PostgreSQL database dump\n\nSELECT 1;\n\n-- PostgreSQL database dump complete\n" * 50, *args)
        if z:
            put("compressed", b"\1" + z)
            put("inspect", bytes([NAMES.index("x.sql.zst")]) + z)
    # Configs: the repo's check packs and the TOML samples in tests and docs.
    for d in ["checks"]:
        for f in os.listdir(os.path.join(ROOT, d)):
            put("config", open(os.path.join(ROOT, d, f), "rb").read())
    pat = re.compile(r'r#+"(.*?)"#+', re.S)
    for d in ["src/config.rs", "src/policy/mod.rs", "tests"]:
        paths = [os.path.join(ROOT, d)]
        if os.path.isdir(paths[0]):
            paths = [os.path.join(paths[0], f) for f in os.listdir(paths[0]) if f.endswith(".rs")]
        for p in paths:
            for m in pat.finditer(open(p, encoding="utf-8").read()):
                if "[[sources]]" in m.group(1) or "[[checks]]" in m.group(1):
                    put("config", m.group(1).encode())
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    for m in re.finditer(r"```toml\n(.*?)```", readme, re.S):
        put("config", m.group(1).encode())


main()
