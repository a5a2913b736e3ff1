#!/bin/sh
echo "promoting run $BATON_RUN_ID to prod"
