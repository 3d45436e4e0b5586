# Sourced by run.sh and soak.sh: how the benchmarks start Switchboard.
#
#   start_switchboard BIN ADDR DATA_DIR ADMIN_PASSWORD LOG [NAME=value …]   (in the background; $! is its pid)
#
# The default configuration (25 s ping, 64 KiB messages, 1 MiB send queues), except the limits a
# load test trips on purpose; info-level logs off. Trailing NAME=value settings are added last, so
# they override these (cluster.sh adds the Redis URL and node id).
start_switchboard() {
  env SWITCHBOARD_SERVER__ADDRESS="$2" SWITCHBOARD_SERVER__DATA_DIR="$3" \
    SWITCHBOARD_AUTH__ADMIN_PASSWORD="$4" \
    SWITCHBOARD_WEBSOCKET__MAX_CONNECTIONS_PER_USER=100000 \
    SWITCHBOARD_WEBSOCKET__RATE_LIMIT__PER_SECOND=1000000 \
    SWITCHBOARD_WEBSOCKET__RATE_LIMIT__BURST=1000000 \
    RUST_LOG=warn "${@:6}" "$1" >"$5" 2>&1 &
}
