#!/bin/sh
echo "paging on-call: run $BATON_RUN_ID of $BATON_PIPELINE failed"
