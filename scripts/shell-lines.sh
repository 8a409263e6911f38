#!/usr/bin/env bash
# The production lines that run only outside the simulation: the server's shell and the peer
# transport. Prints each file's lines of code (not blank, not comments, not the unit tests at the
# end of a file), the total, and all lines (`wc -l`).
set -euo pipefail
cd "$(dirname "$0")/.."
files=(crates/server/src/*.rs crates/transport/src/*.rs)
awk '
    FNR == 1 { in_tests = 0 }
    /^[[:space:]]*#\[cfg\(test\)\]/ { in_tests = 1 }
    !in_tests && NF && $1 !~ /^\/\// { code[FILENAME]++; total++ }
    END {
        for (file in code) printf "%6d %s\n", code[file], file | "sort -k2"
        close("sort -k2")
        printf "%6d lines of code, %d lines in all\n", total, NR
    }
' "${files[@]}"
