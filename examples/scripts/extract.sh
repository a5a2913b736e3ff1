#!/bin/sh
# Stand-in extract step: pretends to pull one day's partition and reports its size.
set -eu
date="$1"
echo "extracting partition $date (limit $BATON_PARAM_LIMIT) into $WAREHOUSE"
echo "rows=1250" >> "$BATON_OUTPUTS"
