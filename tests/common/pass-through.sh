#!/bin/sh
# Passes through to the real @NAME@ after recording the command line like the
# stand-ins do, so end-to-end tests can tell whether (and how) silo ran it.
{ for arg; do printf '%s\0' "$arg"; done; printf '\036'; } >>"${SILO_TEST_STATE:?}/@NAME@.log"
exec @REAL@ "$@"
