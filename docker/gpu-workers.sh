#!/bin/sh
# One Celery worker process per GPU of this host, each seeing only its own card:
#   CUDA_VISIBLE_DEVICES=<i>, node name gpu<i>@<host>, metrics on port METRICS_BASE_PORT + <i>.
#
#   docker/gpu-workers.sh                                    # every GPU nvidia-smi lists
#   GPUS="0 1" QUEUES=interactive-xl,bulk-xl,interactive,bulk docker/gpu-workers.sh
#
# SIGTERM or SIGINT is passed to every worker (each finishes the batch in hand and claims no
# more); the script returns when all of them have stopped, with the first failure's status.
set -eu

GPUS="${GPUS:-$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr '\n' ' ')}"
QUEUES="${QUEUES:-interactive,bulk}"
METRICS_BASE_PORT="${METRICS_BASE_PORT:-9100}"
if [ -z "$(echo "$GPUS" | tr -d ' ')" ]; then
    echo "gpu-workers: no GPU found; set GPUS=\"0 1 ...\"" >&2
    exit 1
fi

pids=""
for gpu in $GPUS; do
    CUDA_VISIBLE_DEVICES="$gpu" EASEL_DEVICE="${EASEL_DEVICE:-cuda}" \
        EASEL_WORKER_METRICS_PORT=$((METRICS_BASE_PORT + gpu)) \
        celery -A config worker -Q "$QUEUES" --pool solo --concurrency 1 \
        -n "gpu$gpu@%h" -l "${LOG_LEVEL:-info}" &
    pids="$pids $!"
done
# shellcheck disable=SC2086  # one pid per word
trap 'kill -TERM $pids 2>/dev/null || true' TERM INT

status=0
for pid in $pids; do
    # A trapped signal interrupts `wait`; wait again until the worker has really gone.
    while kill -0 "$pid" 2>/dev/null; do
        code=0
        wait "$pid" || code=$?
        if [ "$code" -ne 0 ] && [ "$code" -le 128 ] && [ "$status" -eq 0 ]; then status=$code; fi
    done
done
exit "$status"
