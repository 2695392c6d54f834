#!/usr/bin/env bash
# Fresh-machine check: runs the README's two commands (./scripts/serve.sh, ./scripts/test.sh) in a
# clean Debian 12 (bookworm) root, as a new user would on a fresh machine that has only Debian's
# python3 and a rustup Rust toolchain. See docs/development.md.
#
#   sudo scripts/fresh-machine-check.sh                 # serve (time to first token), test, test again
#   sudo scripts/fresh-machine-check.sh --smoke         # cheap: bootstrap + hello-world crate + detection test
#   sudo scripts/fresh-machine-check.sh --phase serve   # one phase (serve | test | all | smoke)
#
# Options:
#   --phase P         serve | test | all (default) | smoke
#   --smoke           same as --phase smoke
#   --twice | --once  run ./scripts/test.sh a second time in the same root (default: --twice)
#   --ref REV         commit to check (default HEAD of this repository; uncommitted changes are not included)
#   --out DIR         results folder (default <repo>/target/fresh-machine); each run writes DIR/<stamp>/
#   --workdir DIR     where the root is unpacked (default /var/tmp/kaito-fresh-machine)
#   --port N          port for the serve phase (default 8080, as the README)
#   --serve-timeout S seconds allowed from `serve.sh` start to the first token (default 5400)
#   --refresh-root    rebuild the cached pristine root tarball (~/.cache/kaito-fresh-root)
#   --clean           delete the root when done (default: kept for inspection until the next run)
#
# What the root is: `mmdebstrap --variant=minbase --include=python3,ca-certificates,git bookworm`, from
# the Debian mirror this machine's own apt sources name. The host's rustup toolchain is bind-mounted
# read-only at the same place a rustup install puts it (~/.rustup, ~/.cargo/bin, `. ~/.cargo/env` in
# ~/.profile); ~/.cargo itself is an empty, writable folder, so crates are downloaded inside. Nothing
# else is installed: scripts/bootstrap.sh must bring in cmake, libclang-dev, g++, python3-venv, ...
# The repository is cloned to /root/kaito-rs inside the root (no ../shared next to it). Every run
# starts from a pristine copy of the cached tarball. Needs root (mount, chroot); the whole check runs
# in its own mount and PID namespaces, so its mounts and processes end with it.
# shellcheck disable=SC2016,SC2317  # command lines for the root are single-quoted; trap handlers
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
self="$repo/scripts/fresh-machine-check.sh"

phase=all
twice=1
ref=HEAD
out_base="$repo/target/fresh-machine"
workdir=/var/tmp/kaito-fresh-machine
port=8080
serve_timeout=5400
refresh_root=0
clean=0
mirror_override=""

usage() { sed -n '2,/^# shellcheck disable/p' "$self" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "fresh-machine-check: $*" >&2; exit 2; }

args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --phase) phase="${2:?--phase needs a value}"; shift 2 ;;
    --phase=*) phase="${1#*=}"; shift ;;
    --smoke) phase=smoke; shift ;;
    --twice) twice=1; shift ;;
    --once) twice=0; shift ;;
    --ref) ref="${2:?--ref needs a value}"; shift 2 ;;
    --ref=*) ref="${1#*=}"; shift ;;
    --out) out_base="${2:?--out needs a value}"; shift 2 ;;
    --out=*) out_base="${1#*=}"; shift ;;
    --workdir) workdir="${2:?--workdir needs a value}"; shift 2 ;;
    --workdir=*) workdir="${1#*=}"; shift ;;
    --port) port="${2:?--port needs a value}"; shift 2 ;;
    --port=*) port="${1#*=}"; shift ;;
    --serve-timeout) serve_timeout="${2:?--serve-timeout needs a value}"; shift 2 ;;
    --serve-timeout=*) serve_timeout="${1#*=}"; shift ;;
    --mirror) mirror_override="${2:?--mirror needs a value}"; shift 2 ;;
    --mirror=*) mirror_override="${1#*=}"; shift ;;
    --refresh-root) refresh_root=1; shift ;;
    --clean) clean=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
case "$phase" in serve|test|all|smoke) ;; *) die "--phase must be serve, test, all or smoke" ;; esac
case "$port" in ''|*[!0-9]*) die "--port must be a number" ;; esac
[ "$(id -u)" -eq 0 ] || die "must run as root (it builds a chroot and bind-mounts into it)"
mkdir -p "$out_base"
out_base="$(cd "$out_base" && pwd)"
workdir="$(mkdir -p "$workdir" && cd "$workdir" && pwd)"

# Re-run inside private mount + PID namespaces: every mount made below is invisible to the host and
# disappears with the check, and every process started in the root is killed when the check ends.
if [ -z "${KAITO_FRESH_IN_NS:-}" ]; then
  command -v unshare >/dev/null || die "unshare (util-linux) not found"
  exec unshare --mount --pid --fork --kill-child --propagation private --mount-proc \
    env KAITO_FRESH_IN_NS=1 bash "$self" "${args[@]}"
fi

t_start=$(date +%s)
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$out_base/$stamp"
mkdir -p "$out"
ln -sfn "$stamp" "$out_base/latest"
summary="$out/summary.txt"
log="$out/check.log"
root="$workdir/root"
clone_in_root=/root/kaito-rs
server_pid=""
checked_rev=""
root_debian=""
results=()   # "name|status|seconds|note"
failed=0

# tee ignores Ctrl-C and TERM so that the cleanup's messages and the summary still reach the log.
exec > >(trap '' INT TERM; exec tee -a "$log") 2>&1
tee_pid=$!
step() { printf '\n==> [fresh-machine %4ss] %s\n' "$(( $(date +%s) - t_start ))" "$*"; }
record() { # name status seconds note
  results+=("$1|$2|$3|${4:-}")
  [ "$2" = ok ] || failed=1
  printf -- '--> %s: %s (%s s)%s\n' "$1" "$2" "$3" "${4:+ — $4}"
}

# One check at a time per workdir.
exec 9>"$workdir/lock"
flock -n 9 || die "another fresh-machine check holds $workdir/lock"

# ---------------------------------------------------------------- mounts and cleanup
mount_under_root() { # prints mount points under $root, deepest first
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 {print $5}' /proc/self/mountinfo | sort -r
}
unmount_all() {
  local m
  while IFS= read -r m; do
    [ -n "$m" ] || continue
    umount -R "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(mount_under_root)
}
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM -- "-$server_pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$server_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
write_summary() { # exit status of the check
  local r n s sec note
  {
    echo "kaito-rs fresh-machine check, $(date -u '+%F %T UTC') on $(hostname), $(nproc) CPUs"
    echo "commit ${checked_rev:-?}, phase $phase, root: Debian ${root_debian:-?} minbase, toolchain: $(cargo --version 2>/dev/null || echo '?')"
    printf '%-52s %-7s %8s  %s\n' step result seconds note
    for r in ${results[@]+"${results[@]}"}; do
      IFS='|' read -r n s sec note <<<"$r"
      printf '%-52s %-7s %8s  %s\n' "$n" "$s" "$sec" "$note"
    done
    echo "total: $(( $(date +%s) - t_start )) s; logs: $out"
    if [ "$1" = 0 ]; then echo "RESULT: PASS"; else echo "RESULT: FAIL (exit $1)"; fi
  } >"$summary"
  step "summary ($summary)"
  cat "$summary"
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ "$rc" != 0 ] || rc=$failed
  stop_server
  unmount_all
  if [ -n "$(mount_under_root)" ]; then echo "WARNING: mounts left under $root" >&2; rc=1; fi
  if [ "$clean" = 1 ] && [ -d "$root" ] && [ -z "$(mount_under_root)" ]; then rm -rf --one-file-system "$root"; fi
  write_summary "$rc"
  # This shell is PID 1 of its namespace: let tee write everything before the namespace is torn down.
  exec >&- 2>&-
  wait "$tee_pid" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- the Debian mirror, from this machine's apt sources
# Prints one-line apt entries ("deb URI SUITE COMPONENTS") for the bookworm suites the host uses.
host_apt_entries() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/#.*//' "$f" | awk '
      $1 == "deb" { i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        uri = $i; suite = $(i + 1); comps = ""
        for (j = i + 2; j <= NF; j++) comps = comps (comps == "" ? "" : " ") $j
        print "deb " uri " " suite " " comps }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush(   nu, ns, u, s, us, ss) {
        if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
          nu = split(uris, us, " "); ns = split(suites, ss, " ")
          for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++) print "deb " us[u] " " ss[s] " " comps
        }
        types = uris = suites = comps = ""; enabled = "yes"; last = ""
      }
      BEGIN { enabled = "yes" }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ { sub(/^[ \t]+/, ""); val[last] = val[last] " " $0;
                 if (last == "types") types = types " " $0; else if (last == "uris") uris = uris " " $0;
                 else if (last == "suites") suites = suites " " $0; else if (last == "components") comps = comps " " $0;
                 next }
      { key = tolower($0); sub(/:.*/, "", key); v = $0; sub(/^[^:]*:[ \t]*/, "", v); last = key
        if (key == "types") types = v; else if (key == "uris") uris = v; else if (key == "suites") suites = v;
        else if (key == "components") comps = v; else if (key == "enabled") enabled = v }
      END { flush() }' "$f"
  done
}
mirror_entries() {
  if [ -n "$mirror_override" ]; then
    echo "deb $mirror_override bookworm main"
    echo "deb $mirror_override bookworm-updates main"
    return
  fi
  host_apt_entries | awk '$3 == "bookworm" || $3 == "bookworm-updates" || $3 == "bookworm-security" || $3 == "bookworm/updates"' \
    | awk '!seen[$0]++'
}

# ---------------------------------------------------------------- the pristine root
prepare_root() {
  step "pristine Debian 12 root"
  local entries key cache_dir tarball t0
  t0=$(date +%s); built=""
  mapfile -t entries < <(mirror_entries)
  if ! printf '%s\n' "${entries[@]}" | awk '$3 == "bookworm" {found = 1} END {exit !found}'; then
    die "no Debian bookworm entry in this machine's apt sources (/etc/apt/sources.list{,.d}); pass --mirror URI"
  fi
  printf 'apt sources for the root (from this machine):\n'; printf '  %s\n' "${entries[@]}"
  cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/kaito-fresh-root"
  key="$(printf '%s\n' v1 minbase python3,ca-certificates,git "${entries[@]}" | sha256sum | cut -c1-12)"
  tarball="$cache_dir/bookworm-minbase-$key.tar"
  if [ "$refresh_root" = 1 ] || [ ! -f "$tarball" ]; then
    if ! command -v mmdebstrap >/dev/null; then
      echo "installing mmdebstrap (apt)"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
    fi
    mkdir -p "$cache_dir"
    rm -f "$tarball.partial.tar"
    echo "mmdebstrap --variant=minbase --include=python3,ca-certificates,git bookworm -> $tarball"
    mmdebstrap --quiet --variant=minbase --include=python3,ca-certificates,git \
      bookworm "$tarball.partial.tar" "${entries[@]}"
    mv "$tarball.partial.tar" "$tarball"
    built=" + mmdebstrap"
  else
    echo "cached pristine root: $tarball ($(date -u -r "$tarball" +%F))"
  fi

  # A pristine copy every run.
  unmount_all
  [ -z "$(mount_under_root)" ] || die "could not unmount everything under $root"
  rm -rf --one-file-system "$root"
  mkdir -p "$root"
  tar -xf "$tarball" -C "$root" --same-owner --numeric-owner
  root_debian="$(cat "$root/etc/debian_version")"
  # What a fresh machine has and a minbase chroot lacks: /etc/hosts (localhost) and a resolver.
  [ -s "$root/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  rm -f "$root/etc/resolv.conf"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # The network this machine sits behind: CA certificates added locally (e.g. for a TLS-re-signing
  # proxy) are trusted in the root too, or no download works there. A machine without any is unaffected.
  local cas=()
  mapfile -t cas < <(find /usr/local/share/ca-certificates -type f -name '*.crt' 2>/dev/null)
  if [ ${#cas[@]} -gt 0 ]; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp "${cas[@]}" "$root/usr/local/share/ca-certificates/"
    chroot "$root" /usr/sbin/update-ca-certificates >/dev/null 2>&1
    echo "trusted in the root as on this machine: ${cas[*]##*/}"
  fi
  record "root (extract$built)" ok $(( $(date +%s) - t0 )) "$tarball"
}

# ---------------------------------------------------------------- mounts: kernel file systems and the host's toolchain
mount_root() {
  step "mounts (proc, sys, dev; host Rust toolchain read-only)"
  local rustup_home cargo_bin
  rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
  cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
  [ -d "$rustup_home/toolchains" ] || die "no rustup toolchains in $rustup_home (set RUSTUP_HOME)"
  [ -x "$cargo_bin/cargo" ] || die "no cargo in $cargo_bin (set CARGO_HOME)"

  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"; mount --make-rslave "$root/sys"
  mount --rbind /dev "$root/dev"; mount --make-rslave "$root/dev"   # with dev/pts, dev/shm
  # rustup's layout, at the same paths as on the host so its toolchain symlinks resolve.
  mkdir -p "$root/root/.rustup" "$root/root/.cargo/bin"
  mount --bind "$rustup_home" "$root/root/.rustup"
  mount -o remount,bind,ro "$root/root/.rustup"
  mount --bind "$cargo_bin" "$root/root/.cargo/bin"
  mount -o remount,bind,ro "$root/root/.cargo/bin"
  # What rustup-init leaves behind: ~/.cargo/env, sourced from ~/.profile and ~/.bashrc.
  cat >"$root/root/.cargo/env" <<'EOF'
#!/bin/sh
# rustup shell setup
case ":${PATH}:" in
    *:"$HOME/.cargo/bin":*) ;;
    *) export PATH="$HOME/.cargo/bin:$PATH" ;;
esac
EOF
  echo '. "$HOME/.cargo/env"' >>"$root/root/.profile"
  echo '. "$HOME/.cargo/env"' >>"$root/root/.bashrc"
  awk -v r="$root" 'index($5, r "/") == 1 && $5 !~ "^" r "/(sys|dev)/" {
      sub(r, "<root>", $5); split($6, o, ","); print "  " $5 " (" o[1] ")"}' /proc/self/mountinfo
}

# Runs a command line as root in the root's login shell with a clean environment, in the clone.
in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
    TERM="${TERM:-dumb}" LANG=C.UTF-8 RUSTUP_AUTO_INSTALL=0 \
    /bin/bash -lc "cd $clone_in_root && $1"
}

# ---------------------------------------------------------------- the clone
clone_repo() {
  step "clone $ref into <root>$clone_in_root"
  local rev dest="$root$clone_in_root"
  rev="$(git -C "$repo" rev-parse --verify "$ref^{commit}")" || die "--ref $ref is not a commit"
  git clone --quiet --no-local "$repo" "$dest"
  git -C "$dest" fetch --quiet "$repo" "$rev"
  git -C "$dest" checkout --quiet --detach "$rev"
  echo "commit: $(git -C "$dest" log -1 --format='%h %s' | cut -c1-120)"
  [ ! -e "$root/root/shared" ] || die "a shared/ folder next to the clone"
  checked_rev="$rev"
}

# ---------------------------------------------------------------- phase: serve (time to first token)
probe_py='
import json, sys, time, urllib.request
mode, port = sys.argv[1], int(sys.argv[2])
base = "http://127.0.0.1:%d" % port
if mode == "ready":
    try:
        with urllib.request.urlopen(base + "/ready", timeout=3) as r:
            sys.exit(0 if r.status == 200 else 1)
    except Exception:
        sys.exit(1)
with urllib.request.urlopen(base + "/v1/models", timeout=30) as r:
    model = json.load(r)["data"][0]["id"]
body = {"model": model, "stream": True, "max_tokens": 24, "temperature": 0,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]}
req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                             headers={"content-type": "application/json"})
sent = time.time(); first = None; text = ""
with urllib.request.urlopen(req, timeout=300) as r:
    for raw in r:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        piece = (json.loads(data)["choices"][0].get("delta") or {}).get("content") or ""
        if piece and first is None:
            first = time.time()
        text += piece
if first is None:
    sys.exit("no token in the streamed reply")
print("first_token_epoch=%.3f" % first)
print("request_ttft_s=%.3f" % (first - sent))
print("model=%s" % model)
print("reply=%s" % json.dumps(text))
'

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

phase_serve() {
  step "phase serve: ./scripts/serve.sh --port $port (log: $out/serve.log)"
  local t0 t0s now first probe_out ttft note
  t0=$(date +%s.%N); t0s=$(date +%s)
  setsid chroot "$root" /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash \
    TERM=dumb LANG=C.UTF-8 RUSTUP_AUTO_INSTALL=0 \
    /bin/bash -lc "cd $clone_in_root && exec ./scripts/serve.sh --port $port" >"$out/serve.log" 2>&1 </dev/null &
  server_pid=$!
  local last_report=$t0s
  while :; do
    now=$(date +%s)
    if ! kill -0 "$server_pid" 2>/dev/null; then
      wait "$server_pid" 2>/dev/null && rc=0 || rc=$?
      server_pid=""
      echo "serve.sh exited ($rc) before it was ready; last lines:"; tail -n 40 "$out/serve.log" | sed 's/^/  | /'
      record serve failed $(( now - t0s )) "serve.sh exited with $rc before /ready"
      return
    fi
    if [ $(( now - t0s )) -ge "$serve_timeout" ]; then
      echo "not ready after ${serve_timeout}s; last lines:"; tail -n 40 "$out/serve.log" | sed 's/^/  | /'
      stop_server
      record serve failed $(( now - t0s )) "no /ready within ${serve_timeout}s"
      return
    fi
    if printf '%s' "$probe_py" | in_root "python3 - ready $port" 2>/dev/null; then break; fi
    if [ $(( now - last_report )) -ge 60 ]; then
      last_report=$now
      echo "  ... $(( now - t0s ))s: $(grep -v '^\s*$' "$out/serve.log" | tail -n 1 | cut -c1-150)"
    fi
    sleep 1
  done
  echo "ready after $(( $(date +%s) - t0s ))s; streaming one chat completion"
  if probe_out="$(printf '%s' "$probe_py" | in_root "python3 - stream $port" 2>&1)"; then
    echo "$probe_out" | sed 's/^/  /'
    first="$(echo "$probe_out" | sed -n 's/^first_token_epoch=//p')"
    ttft="$(awk -v a="$first" -v b="$t0" 'BEGIN {printf "%.0f", a - b}')"
    echo "time to first token from a clean root: $ttft s"
    note="time to first token from a clean root: ${ttft} s (request alone: $(echo "$probe_out" | sed -n 's/^request_ttft_s=//p') s)"
    stop_server
    record serve ok "$ttft" "$note"
  else
    echo "$probe_out" | sed 's/^/  /'
    stop_server
    record serve failed $(( $(date +%s) - t0s )) "streamed request failed"
  fi
}

# ---------------------------------------------------------------- phase: test
phase_test() { # name logfile
  local name="$1" logf="$2" t0 rc
  step "phase $name: ./scripts/test.sh (log: $logf)"
  t0=$(date +%s)
  if in_root "./scripts/test.sh" </dev/null >"$logf" 2>&1; then rc=0; else rc=$?; fi
  echo "exit status $rc after $(( $(date +%s) - t0 ))s; last lines:"
  tail -n 25 "$logf" | sed 's/^/  | /'
  if [ "$rc" = 0 ]; then record "$name" ok $(( $(date +%s) - t0 )) "exit 0"
  else record "$name" failed $(( $(date +%s) - t0 )) "exit $rc; last line: $(grep -v '^\s*$' "$logf" | tail -n 1 | cut -c1-120)"; fi
}

# ---------------------------------------------------------------- phase: smoke (cheap; builds nothing of the project)
smoke_n=0
smoke_step() { # name command-line (runs in the root)
  local name="$1" t0 rc
  smoke_n=$((smoke_n + 1))
  echo "--- $name (log: $out/smoke-$smoke_n.log)"
  t0=$(date +%s)
  if in_root "$2" </dev/null 2>&1 | tee "$out/smoke-$smoke_n.log" | sed 's/^/  | /'; then rc=0; else rc=$?; fi
  if [ "$rc" = 0 ]; then record "smoke: $name" ok $(( $(date +%s) - t0 )); else record "smoke: $name" failed $(( $(date +%s) - t0 )) "exit $rc"; fi
}

phase_smoke() {
  step "phase smoke: toolchain, bootstrap on the clean root, a crate from the registry, detection test"
  smoke_step "toolchain" 'set -e; command -v cargo; cargo --version; rustc --version; test "$(command -v cargo)" = /root/.cargo/bin/cargo;
     if touch /root/.rustup/.rw-probe 2>/dev/null; then echo "~/.rustup is writable"; exit 1; fi; echo "~/.rustup is read-only"'
  smoke_step "root is clean (bootstrap has work to do)" \
    'set -e; . scripts/lib/detect.sh; m="$(kaito_missing_apt_packages | sort | tr "\n" " ")"; echo "missing: $m";
     for p in cmake libclang-dev gcc g++ make python3-venv; do case " $m" in *" $p "*) ;; *) echo "expected $p to be missing"; exit 1;; esac; done'
  smoke_step "bootstrap --python" 'set -e; scripts/bootstrap.sh --python;
     . scripts/lib/detect.sh; m="$(kaito_missing_apt_packages)"; [ -z "$m" ] || { echo "still missing: $m"; exit 1; };
     echo "libclang: $(kaito_find_libclang)"; cmake --version | head -n 1; c++ --version | head -n 1;
     .venv/bin/python -m pytest --version'
  smoke_step "bootstrap --python again (nothing to do)" \
    'set -e; o="$(scripts/bootstrap.sh --python 2>&1)"; echo "${o:-(no output)}"; [ -z "$o" ]'
  smoke_step "hello-world crate with a registry dependency" \
    'set -e; rm -rf /tmp/hello; cargo new --quiet --vcs none /tmp/hello; cd /tmp/hello;
     printf "itoa = \"1\"\n" >>Cargo.toml;
     printf "fn main() { let mut b = itoa::Buffer::new(); println!(\"hello from a clean root: {}\", b.format(42)); }\n" >src/main.rs;
     cargo run --quiet --release'
  smoke_step "scripts/tests/bootstrap-detect.sh" 'scripts/tests/bootstrap-detect.sh'
}

# ---------------------------------------------------------------- run
if [ "$phase" = serve ] || [ "$phase" = all ]; then
  port_free "$port" || die "port $port is in use on this machine (the root shares its loopback); pass --port"
fi
prepare_root
mount_root
clone_repo
case "$phase" in
  smoke) phase_smoke ;;
  serve) phase_serve ;;
  test|all)
    if [ "$phase" = all ]; then phase_serve; fi
    phase_test test "$out/test-1.log"
    if [ "$twice" = 1 ]; then phase_test "test (again)" "$out/test-2.log"; fi
    ;;
esac
exit "$failed"   # the EXIT trap unmounts and writes the summary
