# Shared shell helpers for the demo and the benchmark: free ports and throwaway
# docker-registry processes on loopback.

# free_port: prints a loopback TCP port nobody listens on.
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

# start_registry DIR: starts docker-registry with storage in DIR on a free port,
# waits until it answers, and prints HOST:PORT. Its pid is written to DIR/pid.
start_registry() {
  local dir="$1" port
  port="$(free_port)"
  mkdir -p "$dir/storage"
  cat > "$dir/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YAML
  docker-registry serve "$dir/config.yml" > "$dir/log" 2>&1 &
  echo $! > "$dir/pid"
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
      echo "127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  echo "registry in $dir did not start:" >&2
  cat "$dir/log" >&2
  return 1
}

# stop_registry DIR
stop_registry() {
  [ -f "$1/pid" ] && kill "$(cat "$1/pid")" 2>/dev/null || true
}
