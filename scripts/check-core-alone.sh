#!/usr/bin/env bash
# Checks that kaito-core can be taken alone: with `default-features = false` it is the types and traits
# (Workspace, ModelSource, Backend, EngineConfig, the OpenAI wire types, infer) and nothing of an HTTP
# server, an HTTP client, archives or progress bars; and that the crates built on it ask for no more
# than they use (kaito-k8s and kaito-backends compile without kaito-core's `server` and `fetch`).
#
#   scripts/check-core-alone.sh
#
# A workspace build unifies features, so it cannot see a member that forgot to name a kaito-core
# feature it uses; the per-package checks here can.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

forbidden='axum|hyper|tower-http|ureq|zip|indicatif|rustls'
tree="$(cargo tree -p kaito-core --no-default-features -e normal --prefix none)"
if found="$(grep -E "^($forbidden) " <<<"$tree")"; then
    echo "check-core-alone: kaito-core --no-default-features pulls in:" >&2
    echo "$found" | sort -u >&2
    cargo tree -p kaito-core --no-default-features -e normal -i "$(head -n 1 <<<"$found" | cut -d' ' -f1)" >&2 || true
    exit 1
fi
echo "check-core-alone: kaito-core --no-default-features: $(sort -u <<<"$tree" | wc -l) crates, none of $forbidden"

for package in kaito-backends kaito-k8s; do
    tree="$(cargo tree -p "$package" --no-default-features -e normal --prefix none)"
    if grep -qE '^(ureq|zip|indicatif) ' <<<"$tree"; then
        echo "check-core-alone: $package pulls in kaito-core's downloader" >&2
        exit 1
    fi
done
echo "check-core-alone: kaito-backends and kaito-k8s take kaito-core without its downloader"

# Clippy with -D warnings, not just a check: code only one feature uses (or only the workspace's
# unified features reach) is dead, and warns, in a build of the crate alone.
cargo clippy --release -q -p kaito-core --no-default-features --lib -- -D warnings
cargo clippy --release -q -p kaito-core --lib -- -D warnings
cargo clippy --release -q -p kaito-k8s --all-targets -- -D warnings
echo "check-core-alone: kaito-core (no features, default features) and kaito-k8s (on its own) compile without warnings"
