# shellcheck shell=bash
# A throwaway OCI registry (Debian's docker-registry, CNCF Distribution) on a loopback port, for
# the OpenAI suite against an oci:// model and the OCI benchmarks. Source it, then:
#   kaito_registry_start DIR   # storage and config under DIR; sets KAITO_REGISTRY (host:port)
#                              # and KAITO_REGISTRY_PID; waits until /v2/ answers
#   kaito_registry_stop

kaito_registry_start() {
  local dir="$1" port
  mkdir -p "$dir"
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  printf 'version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$dir/data" "$port" >"$dir/config.yml"
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  KAITO_REGISTRY_PID=$!
  KAITO_REGISTRY="127.0.0.1:$port"
  local i
  for i in $(seq 1 100); do
    if python3 -c "import urllib.request, sys; urllib.request.urlopen('http://$KAITO_REGISTRY/v2/', timeout=1)" 2>/dev/null; then
      return 0
    fi
    kill -0 "$KAITO_REGISTRY_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/registry.log" >&2
  echo "docker-registry did not start on $KAITO_REGISTRY" >&2
  return 1
}

kaito_registry_stop() {
  if [ -n "${KAITO_REGISTRY_PID:-}" ]; then
    kill "$KAITO_REGISTRY_PID" 2>/dev/null || true
    wait "$KAITO_REGISTRY_PID" 2>/dev/null || true
    KAITO_REGISTRY_PID=""
  fi
}
