#!/bin/sh
# Passes through to the real @NAME@ after recording the command line like the
# stand-ins do, so end-to-end tests can tell whether (and how) silo ran it. The tool
# gets the system's PATH even when silo's has only the test's bin/ (no nix on it).
{ for arg; do printf '%s\0' "$arg"; done; printf '\036'; } >>"${SILO_TEST_STATE:?}/@NAME@.log"
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
exec @REAL@ "$@"
