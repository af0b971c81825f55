#!/bin/sh
# tests/releases.sh [VERSION...]: the suites that depend on the OpenSSH
# release, run once with each client release (default: the five below).
#
# `cargo test` runs everything with the machine's own ssh (Debian 12: 9.2p1).
# This script builds each release with ../shared/tools/openssh (cached; it
# installs build-essential and zlib1g-dev when missing), and runs the
# version-sensitive suites with ROSH_TEST_OPENSSH set to its bin dir and
# that dir first on PATH, so that the tests and rosh-ssh under test use that
# ssh, ssh-keygen and sshd (tests/lab/mod.rs).
#
# Where the build tool is missing or a build fails, it says so and skips;
# under CI=true that fails the run instead. Exits non-zero if any suite
# failed with any release, after running them all.
set -u
cd "$(dirname "$0")/.." || exit 1

say() { printf 'releases: %s\n' "$*" >&2; }
ci() { [ -n "${CI-}" ] && [ "${CI-}" != false ]; }
skip_or_fail() {
  if ci; then say "$* (CI is set: failing)"; exit 1; fi
  say "skipping: $*"; exit 0
}

# RHEL 8, Ubuntu 22.04, Ubuntu 24.04, Debian 13, newest.
[ $# -gt 0 ] || set -- 8.0p1 8.9p1 9.6p1 10.0p1 10.5p1
tool=${ROSH_OPENSSH_TOOL:-../shared/tools/openssh}
[ -x "$tool" ] || skip_or_fail "no $tool to build OpenSSH releases with"

# The suites whose outcome depends on ssh's release: the argv, forward-spec
# and config oracles (ssh -G), the incident and exit-code mirroring (core,
# config_forwards, faults), one login, remote forwards, restore, --check,
# the raw-terminal lines and ProxyCommand mode.
suites="argv_oracle spec_oracle config_oracle config_rewrite config_forwards \
remote_forwards one_login core faults restore check describe terminal proxy"
targets=""
for s in $suites; do targets="$targets --test $s"; done

# Build the test binaries once, with the machine's PATH.
# shellcheck disable=SC2086 # $targets is a list of words
cargo test --no-run --lib $targets >/dev/null 2>&1 || {
  # shellcheck disable=SC2086
  cargo test --no-run --lib $targets
  say "the tests do not build"
  exit 1
}

failed=""
for v in "$@"; do
  dir=$("$tool" "$v") || { ci && { failed="$failed $v(build)"; continue; }; say "skipping $v: its build failed"; continue; }
  start=$(date +%s)
  say "OpenSSH $v: $("$dir/ssh" -V 2>&1)"
  ok=true
  # shellcheck disable=SC2086
  ROSH_TEST_OPENSSH=$dir PATH="$dir:$PATH" cargo test --no-fail-fast -q $targets || ok=false
  if $ok; then
    say "OpenSSH $v: passed ($(($(date +%s) - start)) s)"
  else
    say "OpenSSH $v: FAILED ($(($(date +%s) - start)) s)"
    failed="$failed $v"
  fi
done
# The rosh loop against an sshd with PerSourcePenalties (9.8 on, on by
# default): it never locks itself out (issue 20). The newest release's sshd.
last=""
for v in "$@"; do last=$v; done
case $last in
  9.[89]* | 1[0-9].*)
    if dir=$("$tool" "$last"); then
      ROSH_TEST_SSHD=$dir/sshd cargo test -q --test shell the_loop_never || failed="$failed $last(penalties)"
    fi
    ;;
esac
if [ -n "$failed" ]; then
  say "failed with:$failed"
  exit 1
fi
say "all passed: $*"
