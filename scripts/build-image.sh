#!/usr/bin/env bash
# Builds the CPU runtime image ghcr.io/kaito-rs/kaito:<version> without a container daemon and without pulling
# a base image: a Debian 12 root file system from Debian's own packages (mmdebstrap), the `kaito` binary on top,
# packed as an OCI image (umoci). Then proves the image: pushes it to a local registry (Debian's docker-registry,
# 127.0.0.1 only), pulls it back, unpacks it and runs the `kaito serve` command the controller renders from the
# unpacked root file system (read-only, as UID 65532, in its own mount and PID namespaces), and checks it with the
# official `openai` client. Prints the image's sizes. See docs/image.md.
#
#   scripts/build-image.sh
#
# Leaves the OCI image layout in target/image/oci (tags <version> and <version>-cpu); copy it anywhere with
# `skopeo copy oci:target/image/oci:<version> docker://REGISTRY/kaito-rs/kaito:<version>`.
# Needs root on Debian/Ubuntu (it apt-installs mmdebstrap, umoci, skopeo and docker-registry when missing).
# KAITO_IMAGE_KEEP=1 keeps the scratch directory for inspection. Safe to run again.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n== build-image: %s\n' "$*" >&2; }
note() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap, chroot, mount namespaces)"
[ "$(uname -m)" = x86_64 ] || die "builds the linux/amd64 image only (this is $(uname -m))"

version="$(awk '/^\[workspace.package\]/{p=1; next} /^\[/{p=0} p && $1=="version" {gsub(/"/, "", $3); print $3; exit}' Cargo.toml)"
[ -n "$version" ] || die "no version in Cargo.toml [workspace.package]"
source_url="$(awk '/^\[workspace.package\]/{p=1; next} /^\[/{p=0} p && $1=="repository" {gsub(/"/, "", $3); print $3; exit}' Cargo.toml)"
image_ref="ghcr.io/kaito-rs/kaito:$version"
uid=65532
model=smollm2-135m-instruct
# The same suite as debian:12-slim, the Containerfile's runtime base.
suite=bookworm
t_start=$SECONDS

# ---------------------------------------------------------------------------------------------------------------
step "1/8 tools"
declare -A tool_pkg=([mmdebstrap]=mmdebstrap [mmtarfilter]=mmdebstrap [umoci]=umoci [skopeo]=skopeo
  [docker-registry]=docker-registry [jq]=jq [strip]=binutils [unshare]=util-linux [curl]=curl)
missing=()
for tool in "${!tool_pkg[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${tool_pkg[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  note "installing ${missing[*]} (apt)"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
scripts/bootstrap.sh # cmake, libclang, a C/C++ compiler for llama.cpp
if ! .venv/bin/python -c 'import openai, yaml' 2>/dev/null; then
  scripts/bootstrap.sh --python
fi
py="$root/.venv/bin/python"

# Scratch space; everything the script starts is stopped and removed on exit.
work="$(mktemp -d "${TMPDIR:-/var/tmp}/kaito-image.XXXXXX")"
registry_pid=""
serve_pid=""  # the background job (a subshell running unshare)
server_pid="" # the server: PID 1 of its PID namespace (unshare's --kill-child does not survive the setuid)
cleanup() {
  local rc=$?
  if [ -n "$server_pid" ]; then
    kill -KILL "$server_pid" 2>/dev/null || true # the namespace's init: everything in it goes with it
  fi
  if [ -n "$serve_pid" ]; then
    pkill -KILL -P "$serve_pid" 2>/dev/null || true # unshare, if the server was never found
    wait "$serve_pid" 2>/dev/null || true
  fi
  if [ -n "$registry_pid" ] && kill -0 "$registry_pid" 2>/dev/null; then
    kill -TERM "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  if findmnt -rn -o TARGET | grep -F "$work" >/dev/null; then
    note "something is still mounted under $work; leaving it in place"
  elif [ "${KAITO_IMAGE_KEEP:-0}" = 1 ]; then
    note "kept $work"
  else
    rm -rf "$work"
  fi
  [ $rc -eq 0 ] || note "FAILED (exit $rc)"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------------------------
step "2/8 kaito $version: cargo build --release -p kaito-cli --bin kaito (CPU, llama.cpp) into target/image"
t=$SECONDS
# Not target/release: that one is built with other features by the test suite. SOURCE_DATE_EPOCH must not reach
# llama.cpp's CMake (it would turn its AVX2/FMA/F16C defaults off).
env -u SOURCE_DATE_EPOCH nice -n 10 cargo build --release --locked -p kaito-cli --bin kaito --target-dir target/image
bin="$root/target/image/release/kaito"
note "built in $((SECONDS - t)) s: $("$bin" --version)"
model_path="$("$bin" pull "$model" | tail -n 1)"
[ -f "$model_path" ] || die "kaito pull did not give a file: $model_path"
note "model: $model_path"

# ---------------------------------------------------------------------------------------------------------------
step "3/8 Debian $suite root file system (mmdebstrap --variant=minbase, from this machine's apt sources)"
t=$SECONDS
# The Debian archives this machine's apt already uses (deb822 or one-line sources alike), nothing hard-coded.
# shellcheck disable=SC2016 # apt's $(FIELD) placeholders, not shell
mapfile -t mirrors < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
  'Identifier: Packages' 'Origin: Debian' | sort -u |
  awk -v s="$suite" '$2 == s || $2 == s "-updates" || $2 == s "-security" {print "deb " $1 " " $2 " " $3}')
[ ${#mirrors[@]} -gt 0 ] || die "no Debian $suite archive in this machine's apt sources"
printf '  %s\n' "${mirrors[@]}" >&2
# Same packages and user as the Containerfile's runtime stage; documentation and locales left out like
# debian:12-slim; merged /usr set up by mmdebstrap's hook rather than the usrmerge package (which pulls in
# perl). SOURCE_DATE_EPOCH (the last commit's time) fixes the packages' file times.
# shellcheck disable=SC2016 # "$1" in the hooks is mmdebstrap's (the root being built)
SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" mmdebstrap --variant=minbase --mode=root --format=tar \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --include=ca-certificates,libgomp1,libstdc++6 \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --customize-hook="chroot \"\$1\" groupadd --system --gid $uid kaito" \
  --customize-hook="chroot \"\$1\" useradd --system --uid $uid --gid $uid --home-dir /var/cache/kaito --no-create-home --shell /usr/sbin/nologin kaito" \
  --customize-hook="install -d -o $uid -g $uid -m 0755 \"\$1/var/cache/kaito\"" \
  --customize-hook='rm -rf "$1"/var/log/apt "$1"/var/log/dpkg.log "$1"/var/cache/ldconfig/aux-cache "$1"/etc/resolv.conf "$1"/etc/hostname' \
  "$suite" "$work/base.tar" "${mirrors[@]}" >"$work/mmdebstrap.log" 2>&1 ||
  { tail -n 40 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
note "root file system in $((SECONDS - t)) s"

# ---------------------------------------------------------------------------------------------------------------
step "4/8 OCI image (umoci): layer 1 Debian, layer 2 kaito, config"
t=$SECONDS
oci="$work/oci"
umoci init --layout "$oci"
umoci new --image "$oci:build"
umoci unpack --image "$oci:build" "$work/bundle" >/dev/null
# Device nodes are the runtime's business, not the image's.
mmtarfilter --path-exclude='/dev/*' <"$work/base.tar" | tar -C "$work/bundle/rootfs" --numeric-owner -xpf -
rm -f "$work/base.tar"
umoci repack --image "$oci:build" --refresh-bundle \
  --history.created_by "mmdebstrap --variant=minbase $suite --include=ca-certificates,libgomp1,libstdc++6 (user kaito $uid:$uid)" \
  "$work/bundle"
install -D -m 0755 "$bin" "$work/bundle/rootfs/usr/local/bin/kaito"
strip "$work/bundle/rootfs/usr/local/bin/kaito"
umoci repack --image "$oci:build" --history.created_by "COPY kaito /usr/local/bin/kaito" "$work/bundle"
revision="$(git rev-parse HEAD)"
umoci config --image "$oci:build" --os linux --architecture amd64 --author kaito-rs \
  --config.user "$uid:$uid" --config.workingdir / \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env KAITO_CACHE_DIR=/var/cache/kaito \
  --config.entrypoint /usr/local/bin/kaito \
  --config.cmd serve --config.cmd --host --config.cmd 0.0.0.0 --config.cmd --port --config.cmd 5000 \
  --config.exposedports 5000/tcp \
  --config.label org.opencontainers.image.title=kaito \
  --config.label "org.opencontainers.image.description=kaito-rs runtime: OpenAI-compatible LLM server with llama.cpp embedded" \
  --config.label "org.opencontainers.image.source=$source_url" \
  --config.label org.opencontainers.image.licenses=Apache-2.0 \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.revision=$revision" \
  --history.created_by 'USER 65532:65532, ENTRYPOINT ["/usr/local/bin/kaito"], CMD ["serve","--host","0.0.0.0","--port","5000"], EXPOSE 5000/tcp'
umoci tag --image "$oci:build" "$version"
umoci tag --image "$oci:build" "$version-cpu"
umoci rm --image "$oci:build"
umoci gc --layout "$oci"
rm -rf "$work/bundle"
note "packed in $((SECONDS - t)) s; tags: $(umoci ls --layout "$oci" | tr '\n' ' ')"

# ---------------------------------------------------------------------------------------------------------------
step "5/8 push to a local registry (docker-registry on 127.0.0.1)"
port_of_free_socket() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
reg_port="$(port_of_free_socket)"
registry="127.0.0.1:$reg_port"
mkdir -p "$work/registry"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $registry
  secret: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  curl -fsS "http://$registry/v2/" >/dev/null 2>&1 && break
  kill -0 "$registry_pid" 2>/dev/null || { cat "$work/registry.log" >&2; die "docker-registry exited"; }
  sleep 0.1
done
curl -fsS "http://$registry/v2/" >/dev/null || die "docker-registry did not answer on $registry"
echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$work/policy.json"
skopeo_() { skopeo --policy "$work/policy.json" "$@"; }
repo="$registry/kaito-rs/kaito"
for tag in "$version" "$version-cpu"; do
  skopeo_ copy --quiet --preserve-digests --dest-tls-verify=false "oci:$oci:$tag" "docker://$repo:$tag"
done
note "tags in the registry: $(curl -fsS "http://$registry/v2/kaito-rs/kaito/tags/list")"

# ---------------------------------------------------------------------------------------------------------------
step "6/8 pull it back and unpack its root file system"
pulled="$work/pulled"
skopeo_ copy --quiet --src-tls-verify=false "docker://$repo:$version" "oci:$pulled:$version"
local_digest="$(jq -r --arg t "$version" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$oci/index.json")"
remote_digest="$(skopeo_ inspect --tls-verify=false --format '{{.Digest}}' "docker://$repo:$version")"
pulled_digest="$(jq -r '.manifests[0].digest' "$pulled/index.json")"
note "manifest digest: built $local_digest, registry $remote_digest, pulled $pulled_digest"
if [ "$local_digest" != "$remote_digest" ] || [ "$local_digest" != "$pulled_digest" ]; then die "digests differ"; fi
umoci unpack --image "$pulled:$version" "$work/run" >/dev/null
rootfs="$work/run/rootfs"
spec="$work/run/config.json" # the OCI runtime spec umoci derived from the image config
if [ "$(jq -r .process.user.uid "$spec")" != "$uid" ] || [ "$(jq -r .process.user.gid "$spec")" != "$uid" ]; then
  die "the image's user is not $uid:$uid"
fi
# (umoci adds TERM=xterm for a terminal; a pod has none)
mapfile -t image_env < <(jq -r '.process.env[] | select(startswith("TERM=") | not)' "$spec")
image_cwd="$(jq -r .process.cwd "$spec")"
note "image config: user $(jq -r '"\(.process.user.uid):\(.process.user.gid)"' "$spec"), cwd $image_cwd, env ${image_env[*]}"
note "entrypoint + cmd: $(jq -c .process.args "$spec")"

# ---------------------------------------------------------------------------------------------------------------
step "7/8 serve from the image's root file system, as the controller renders the pod"
# What the controller would run for a CPU Workspace: image, command, args, port, user.
mkdir -p "$work/config"
cat >"$work/config/workspace.yaml" <<EOF
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: image-smoke
resource:
  labelSelector:
    matchLabels: {apps: image-smoke}
inference:
  preset:
    name: $model
  engine:
    threads: 1
    parallel: 2
EOF
# The pod's volumes: the model cache (an emptyDir; here holding the downloaded model in the cache layout from
# before the model store, which the runtime moves into the store when it starts), /tmp (an emptyDir), the
# Workspace ConfigMap at /etc/kaito (read-only). Everything else read-only.
cache="$work/cache"
install -d -o "$uid" -g "$uid" "$cache" "$cache/presets" "$cache/presets/$model"
install -o "$uid" -g "$uid" -m 0644 "$model_path" "$cache/presets/$model/$(basename "$model_path")"
mkdir -p "$rootfs/etc/kaito" # mount point (the runtime creates it in a pod)
# Inside new mount and PID namespaces (nothing is mounted on this machine's own tree, and the server is PID 1
# as in a container): make the root read-only, mount /proc, /dev, /tmp and the volumes, chroot, drop to 65532.
# shellcheck disable=SC2016
in_image='
  set -euo pipefail
  r=$1 cache=$2 config=$3 uid=$4 cwd=$5; shift 5
  mount --bind "$r" "$r"
  mount -o remount,bind,ro "$r"
  mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
  mount -t tmpfs -o nosuid,mode=0755,size=1m tmpfs "$r/dev"
  for d in null zero full random urandom; do touch "$r/dev/$d"; mount --bind "/dev/$d" "$r/dev/$d"; done
  mount -t tmpfs -o nosuid,nodev,mode=1777,size=256m tmpfs "$r/tmp"
  mount --bind "$cache" "$r/var/cache/kaito"
  mount --bind "$config" "$r/etc/kaito"
  mount -o remount,bind,ro "$r/etc/kaito"
  exec chroot --userspec="$uid:$uid" --groups="$uid" "$r" /usr/bin/env -i -C "$cwd" "$@"
'
run_in_image() {
  unshare --mount --pid --fork --kill-child --propagation private -- \
    bash -c "$in_image" in-image "$rootfs" "$cache" "$work/config" "$uid" "$image_cwd" "${image_env[@]}" "$@"
}
note "kaito --version in the image: $(run_in_image kaito --version)"
# The image's own binary renders the Workspace (as the controller in this image would).
run_in_image kaito render -f /etc/kaito/workspace.yaml | "$py" scripts/image-smoke.py pod >"$work/pod.json"
note "rendered runtime container: $(jq -c . "$work/pod.json")"
[ "$(jq -r .image "$work/pod.json")" = "$image_ref" ] || die "the controller renders $(jq -r .image "$work/pod.json"), not $image_ref"
[ "$(jq -r .runAsUser "$work/pod.json")" = "$uid" ] || die "the controller runs as $(jq -r .runAsUser "$work/pod.json"), not $uid"
pod_port="$(jq -r '.ports[0]' "$work/pod.json")"
config_blob="$(jq -r '.config.digest' "$pulled/blobs/sha256/${pulled_digest#sha256:}" | sed 's/^sha256://')"
jq -e --arg p "$pod_port/tcp" '.config.ExposedPorts | has($p)' "$pulled/blobs/sha256/$config_blob" >/dev/null ||
  die "the image does not expose $pod_port/tcp, the port the controller uses"
[ "$(jq -r '.env.KAITO_CACHE_DIR' "$work/pod.json")" = /var/cache/kaito ] || die "unexpected KAITO_CACHE_DIR in the pod"
# The pod's command and args, with the listening address moved to this machine's loopback and a free port.
serve_port="$(port_of_free_socket)"
mapfile -t cmdline < <(jq -r --arg port "$serve_port" '
  (.command + .args) as $a
  | [range(0; $a | length) as $i
     | if $i > 0 and $a[$i - 1] == "--host" then "127.0.0.1"
       elif $i > 0 and $a[$i - 1] == "--port" then $port
       else $a[$i] end] | .[]' "$work/pod.json")
note "command: ${cmdline[*]}"
t=$SECONDS
run_in_image "${cmdline[@]}" >"$work/serve.log" 2>&1 &
serve_pid=$!
# The job is a subshell; its child is unshare, whose child is the server.
for _ in $(seq 100); do
  unshare_pid="$(pgrep -P "$serve_pid" | head -n 1)"
  [ -n "$unshare_pid" ] && server_pid="$(pgrep -P "$unshare_pid" | head -n 1)"
  [ -n "$server_pid" ] && break
  sleep 0.1
done
[ -n "$server_pid" ] || { cat "$work/serve.log" >&2; die "kaito serve did not start"; }
base="http://127.0.0.1:$serve_port"
ready=0
for _ in $(seq 600); do
  if ! kill -0 "$serve_pid" 2>/dev/null; then
    cat "$work/serve.log" >&2
    die "kaito serve exited before it was ready"
  fi
  if curl -fsS "$base/ready" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.2
done
[ $ready = 1 ] || { tail -n 40 "$work/serve.log" >&2; die "kaito serve not ready after 120 s"; }
note "ready in $((SECONDS - t)) s"
server_uid="$(awk '/^Uid:/ {print $2}' "/proc/$server_pid/status")"
server_root="$(readlink "/proc/$server_pid/root")"
note "server process: uid $server_uid, root $server_root, $(tr '\0' ' ' <"/proc/$server_pid/cmdline")"
[ "$server_uid" = "$uid" ] || die "the server runs as uid $server_uid"
[ "$server_root" = "$rootfs" ] || die "the server's root is $server_root, not the image's"
"$py" scripts/image-smoke.py check --base-url "$base" --model "$model"
# Stop it as the kubelet does (SIGTERM to PID 1) and expect a clean exit.
kill -TERM "$server_pid"
stopped=0
for _ in $(seq 150); do
  kill -0 "$serve_pid" 2>/dev/null || { stopped=1; break; }
  sleep 0.2
done
[ $stopped = 1 ] || die "kaito serve did not stop within 30 s of SIGTERM"
serve_rc=0
wait "$serve_pid" || serve_rc=$?
serve_pid=""
server_pid=""
[ $serve_rc -eq 0 ] || { tail -n 20 "$work/serve.log" >&2; die "kaito serve exited with $serve_rc after SIGTERM"; }
note "stopped cleanly on SIGTERM"
if grep -qiE 'read-only file system|permission denied' "$work/serve.log"; then
  grep -iE 'read-only file system|permission denied' "$work/serve.log" >&2
  die "the server tried to write outside its volumes"
fi

# ---------------------------------------------------------------------------------------------------------------
step "8/8 sizes"
manifest="$pulled/blobs/sha256/${pulled_digest#sha256:}"
compressed="$(jq '[.config.size] + [.layers[].size] | add' "$manifest")"
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
uncompressed=0
layer_lines=()
while read -r digest size; do
  raw="$(gzip -dc "$pulled/blobs/sha256/${digest#sha256:}" | wc -c)"
  uncompressed=$((uncompressed + raw))
  layer_lines+=("${digest:7:12}: $(mib "$size") compressed, $(mib "$raw") uncompressed")
done < <(jq -r '.layers[] | "\(.digest) \(.size)"' "$manifest")
binary_size="$(stat -c %s "$rootfs/usr/local/bin/kaito")"
rm -rf target/image/oci
cp -a "$oci" target/image/oci
cat >&2 <<EOF

kaito image $image_ref (linux/amd64, cpu), manifest $local_digest
  compressed (registry, download): $(mib "$compressed")   uncompressed (layers): $(mib "$uncompressed")
  root file system on disk: $(du -sh "$rootfs" | cut -f1)   kaito binary (stripped): $(mib "$binary_size")
$(printf '  layer %s\n' "${layer_lines[@]}")
  OCI layout: target/image/oci (tags $version, $version-cpu)
  total time: $((SECONDS - t_start)) s
build-image: OK
EOF
