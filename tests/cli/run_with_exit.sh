#!/bin/sh
# Runs a command, merges its output and appends "exit=<code>", so ctest's PASS_REGULAR_EXPRESSION
# can check the message and the exit code together.
"$@" 2>&1
echo "exit=$?"
