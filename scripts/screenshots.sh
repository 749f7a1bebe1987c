#!/usr/bin/env bash
# Screenshots of the apps at phone and desktop width, into docs/screenshots/:
# the browser journeys save them when TANDEM_SCREENSHOTS_DIR is set. Needs
# Debian's chromium and chromium-driver.
set -euo pipefail
cd "$(dirname "$0")/.."
export TANDEM_SCREENSHOTS_DIR="$PWD/docs/screenshots"
export TANDEM_TEST_BROWSER=required
mkdir -p "$TANDEM_SCREENSHOTS_DIR"
cargo test --test api browser:: -- --test-threads=1 "$@"
ls -1 "$TANDEM_SCREENSHOTS_DIR"
