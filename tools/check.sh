#!/usr/bin/env bash
# R CMD build and R CMD check --no-manual of the package's source tarball,
# as a machine with only R and Rust runs them: no broker (the tests that need
# one skip; the mock-cluster tests run the data path), the crates from the
# tarball's Cargo.lock. Fails on any ERROR or WARNING; NOTEs are printed
# (README.md says why each one is there).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
. "$here/versions.sh"   # CARGO_TARGET_DIR: reuse the incremental build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
no_broker=(env -u STREAMLYR_TEST_BOOTSTRAP -u STREAMLYR_TEST_SASL_BOOTSTRAP -u STREAMLYR_KAFKA_TOOLS)
"${no_broker[@]}" R CMD build "$root" 2>&1 | grep -v "^\s*Compiling " | tail -15
tarball="$(ls streamlyr_*.tar.gz)"
status=0
"${no_broker[@]}" R CMD check --no-manual "$tarball" > check.out 2>&1 || status=$?
log="streamlyr.Rcheck/00check.log"
# Every finding with its details: from its "* checking ..." line to the next one.
findings() { awk '/^\* /{show = ($0 ~ /\.\.\. *('"$1"')$/)} show' "$log"; }
if [ "$status" -ne 0 ] || grep -qE "^Status: .*(ERROR|WARNING)" "$log"; then
  echo "check.sh: R CMD check found problems:" >&2
  findings "ERROR|WARNING" >&2
  [ -f streamlyr.Rcheck/tests/testthat.Rout.fail ] && tail -60 streamlyr.Rcheck/tests/testthat.Rout.fail >&2
  exit 1
fi
findings "NOTE"
grep "^Status:" "$log"
