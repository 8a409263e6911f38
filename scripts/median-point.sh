# median-point.sh: sourced by the benchmark scripts that repeat a matrix of points and print the
# median of each.
#
# median_point RESULTS KEY: of RESULTS' lines "REPETITION KEY... OPS P50 [...]" whose fields after
# the repetition are KEY, the median ops/s and, in parentheses, that line's p50 — "30427 (1999)".
median_point() {
    awk -v key="$2" '{ rest = $0; sub(/^[^ ]+ /, "", rest) } index(rest, key " ") == 1 { split(substr(rest, length(key) + 2), f, " "); print f[1], f[2] }' "$1" |
        sort -n | awk '{ ops[NR] = $1; p50[NR] = $2 } END { m = int((NR + 1) / 2); printf "%s (%s)", ops[m], p50[m] }'
}
