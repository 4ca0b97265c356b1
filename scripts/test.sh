#!/usr/bin/env bash
# The test command: sets up the machine (idempotent), starts RabbitMQ and
# Garage on loopback if needed, then checks formatting and lints, builds the
# container image, and runs every test of the workspace, including those
# against the real services and inside the image.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

"$ROOT/scripts/setup.sh"
# shellcheck disable=SC1091
source "$ASSETS/env.sh"
"$ROOT/scripts/services.sh" start
[ -d "$FIXTURES" ] || die "fixtures not found at $FIXTURES (set MONTEUR_FIXTURES)"
export MONTEUR_FIXTURES="$(cd "$FIXTURES" && pwd)"

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The container image (cached; rebuilt when the binary or its packages
# change): worker/tests/image.rs runs monteur inside it.
say "container image"
"$ROOT/scripts/image.sh" build
say "cargo test"
cargo test --workspace --locked
