#!/usr/bin/env bash
# Makes sure promtool (Prometheus' rule and metrics checker) is at hand for the
# monitoring tests and `make monitoring-check`, and prints its path as the last
# line of stdout. Looks at $PROMTOOL, then PATH, then .tools/bin/; otherwise
# extracts it from Debian's `prometheus` package WITHOUT installing the package:
# the Prometheus daemon is neither installed nor started. `apt-get download`
# works as any user; only a missing package list needs root (apt-get update).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.tools/bin"

works() { [[ -x "$1" ]] && "$1" --version >/dev/null 2>&1; }

found() {
  echo "promtool: $("$1" --version 2>&1 | head -n 1)" >&2
  echo "$1"
  exit 0
}

cannot() {
  cat >&2 <<EOF
promtool is not available and could not be extracted: $1
The monitoring checks need promtool (Prometheus >= 2.37). Any of these works:
  - Debian/Ubuntu: run 'sudo apt-get update' once, then this script again
    (it downloads the 'prometheus' package and copies only usr/bin/promtool
    into .tools/bin/; nothing is installed), or 'apt-get install prometheus';
  - put a promtool binary on PATH or in .tools/bin/;
  - point \$PROMTOOL at a promtool binary.
EOF
  exit 1
}

if [[ -n "${PROMTOOL:-}" ]]; then
  works "$PROMTOOL" && found "$PROMTOOL"
  cannot "\$PROMTOOL=$PROMTOOL does not run"
fi
on_path=$(command -v promtool || true)
[[ -n "$on_path" ]] && works "$on_path" && found "$on_path"
works "$tools/promtool" && found "$tools/promtool"

command -v apt-get >/dev/null || cannot "apt-get is not installed (not a Debian-like system)"
command -v dpkg-deb >/dev/null || cannot "dpkg-deb is not installed"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download() { (cd "$tmp" && apt-get download prometheus >"$tmp/apt.log" 2>&1); }

echo "extracting promtool from Debian's prometheus package into .tools/bin/" >&2
if ! download; then
  # Usually an empty package list on a fresh machine.
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update >"$tmp/update.log" 2>&1 || cannot "apt-get update failed: $(tail -n 3 "$tmp/update.log")"
    download || cannot "apt-get download prometheus failed: $(tail -n 3 "$tmp/apt.log")"
  else
    cannot "apt-get download prometheus failed: $(tail -n 3 "$tmp/apt.log")"
  fi
fi
debs=("$tmp"/prometheus_*.deb)
deb=${debs[0]}
[[ -f "$deb" ]] || cannot "apt-get download prometheus left no .deb"
dpkg-deb -x "$deb" "$tmp/root"
[[ -x "$tmp/root/usr/bin/promtool" ]] || cannot "the prometheus package has no usr/bin/promtool"
mkdir -p "$tools"
install -m 0755 "$tmp/root/usr/bin/promtool" "$tools/promtool"
works "$tools/promtool" || cannot "the extracted promtool does not run"
found "$tools/promtool"
