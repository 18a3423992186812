#!/bin/sh
# Container entry point: `ponder serve` configured from PONDER_* environment variables
# (Docker/compose `environment:`, a Kubernetes ConfigMap). Arguments, if any, replace the
# whole command: `docker run IMAGE prepare-models` runs `ponder prepare-models`.
#
#   PONDER_MODELS            models to serve, space- or comma-separated (default: ponder-tiny)
#   PONDER_ENGINE_URLS       remote vLLM servers (--engine-url each), space- or comma-separated
#   PONDER_HOST / PONDER_PORT                      listen address (default 0.0.0.0:8000)
#   PONDER_MAX_MODEL_LEN, PONDER_KV_CACHE_GIB      engine settings
#   PONDER_MAX_INFLIGHT, PONDER_MAX_QUEUE, PONDER_QUEUE_TIMEOUT,
#   PONDER_MAX_REQUEST_TOKENS, PONDER_DEFAULT_MAX_TOKENS, PONDER_KEY_MAX_CONCURRENCY,
#   PONDER_KEY_TPM, PONDER_SHUTDOWN_GRACE           limits (see `ponder serve --help`)
#   PONDER_METRICS_PORT, PONDER_METRICS_AUTH=true   where /metrics is served / whether it needs the key
#   PONDER_LOG_LEVEL, PONDER_EXTRA_ARGS             logging; any further flags, word-split
#   PONDER_API_KEY           read by `ponder serve` itself (comma-separated keys); never a flag,
#                            so keys do not show in the process list
set -eu
PONDER_BIN=${PONDER_BIN:-ponder}

if [ "$#" -gt 0 ]; then
    exec $PONDER_BIN "$@"
fi

set -- serve --host "${PONDER_HOST:-0.0.0.0}" --port "${PONDER_PORT:-8000}" --log-level "${PONDER_LOG_LEVEL:-info}"
for model in $(echo "${PONDER_MODELS:-ponder-tiny}" | tr ',' ' '); do
    set -- "$@" --model "$model"
done
for url in $(echo "${PONDER_ENGINE_URLS:-}" | tr ',' ' '); do
    set -- "$@" --engine-url "$url"
done

# optional value flags: VARIABLE=flag
for pair in \
    PONDER_MAX_MODEL_LEN=--max-model-len \
    PONDER_KV_CACHE_GIB=--kv-cache-gib \
    PONDER_MAX_INFLIGHT=--max-inflight \
    PONDER_MAX_QUEUE=--max-queue \
    PONDER_QUEUE_TIMEOUT=--queue-timeout \
    PONDER_MAX_REQUEST_TOKENS=--max-request-tokens \
    PONDER_DEFAULT_MAX_TOKENS=--default-max-tokens \
    PONDER_KEY_MAX_CONCURRENCY=--key-max-concurrency \
    PONDER_KEY_TPM=--key-tpm \
    PONDER_SHUTDOWN_GRACE=--shutdown-grace \
    PONDER_METRICS_PORT=--metrics-port
do
    var=${pair%%=*}
    eval "value=\${$var:-}"
    if [ -n "$value" ]; then
        set -- "$@" "${pair#*=}" "$value"
    fi
done

case "${PONDER_METRICS_AUTH:-false}" in
    1|true|TRUE|yes) set -- "$@" --metrics-auth ;;
esac

# shellcheck disable=SC2086  # word-splitting is the point
exec $PONDER_BIN "$@" ${PONDER_EXTRA_ARGS:-}
