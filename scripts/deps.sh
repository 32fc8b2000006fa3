#!/usr/bin/env bash
# Installs what Depicted needs at run time and is missing: Chromium, its
# WebDriver (chromedriver), Chromium's headless shell (the faster capture
# engine, used when installed), Firefox ESR and its WebDriver (geckodriver,
# built once with cargo: Mozilla publishes it on crates.io, Debian does not
# package it) and the fonts screenshots are rendered with.
# With --test it also installs what the test suite compares against
# (ImageMagick's `compare`, the reference for the distortion metric,
# `openssl`, which makes the TLS tests' certificates, PostgreSQL, whose
# throw-away clusters the scale-out tests run on, and Garage, the
# S3-compatible store of the artifacts-in-a-bucket tests).
# Safe to run again: it does nothing when everything is there.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v firefox-esr >/dev/null 2>&1 || command -v firefox >/dev/null 2>&1 || need+=(firefox-esr)
[ -d /usr/share/fonts/truetype/dejavu ] || need+=(fonts-dejavu-core)
[ -d /usr/share/fonts/truetype/liberation ] || need+=(fonts-liberation)
if [ "${1:-}" = "--test" ]; then
    command -v compare >/dev/null 2>&1 || need+=(imagemagick)
    command -v openssl >/dev/null 2>&1 || need+=(openssl)
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
fi

if [ ${#need[@]} -gt 0 ]; then
    echo "deps: installing ${need[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq "${need[@]}" >&2
fi

# The headless shell is optional: without it captures use `chromium`.
if ! command -v chromium-headless-shell >/dev/null 2>&1; then
    echo "deps: installing chromium-headless-shell" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    { $sudo apt-get install -y -qq chromium-headless-shell >&2 ||
        { $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq chromium-headless-shell >&2; }; } ||
        echo "deps: chromium-headless-shell is not available here; captures use chromium" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "deps: cargo is missing; install Rust (https://rustup.rs) first" >&2
    exit 2
fi

# geckodriver, Firefox's WebDriver: compiled once and reused after that.
# As root it goes to /usr/local/bin, where the unprivileged user a server
# runs the browser as (`nobody`) may run it; otherwise to cargo's bin
# directory. It only relays a session's start, so it is built at opt-level
# 1 without LTO: the build is what a machine waits for.
if ! command -v geckodriver >/dev/null 2>&1 &&
    [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/geckodriver" ]; then
    echo "deps: installing geckodriver 0.37.1 (cargo install, once)" >&2
    root=()
    [ "$(id -u)" -ne 0 ] || root=(--root /usr/local)
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=0 \
        cargo install geckodriver --version 0.37.1 --locked "${root[@]}" >&2
fi

# With --test: Garage, the real S3-compatible store the tests keep artifacts
# in (`--artifacts-url s3://…`). Compiled once into cargo's bin directory
# and reused after that. Only what the tests use is built (the SQLite
# metadata engine; no LMDB, K2V or metrics), at opt-level 1 without LTO:
# a test node stores a few megabytes, so its speed does not matter, and
# the build is what a fresh machine waits for.
if [ "${1:-}" = "--test" ] && ! command -v garage >/dev/null 2>&1 &&
    [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/garage" ]; then
    echo "deps: installing garage 2.5.0 for the tests (cargo install, once)" >&2
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=0 \
        cargo install garage --version 2.5.0 --locked \
        --no-default-features --features bundled-libs,sqlite >&2
fi
