#!/bin/sh
# Stand-in load step for one region.
set -eu
echo "loading region $1 (idempotency key $BATON_IDEMPOTENCY_KEY)"
