#!/usr/bin/env bash
# Opens a simulator visualisation (crates/sim/src/viz/page.html with a run's data substituted in) in
# headless Chromium, fails on any JavaScript error or an unfinished render, and saves a screenshot.
#
#   scripts/viz-browser-check.sh FILE.html OUT.png
#
# What it checks, from two Chromium runs:
#   1. `--dump-dom`: the page marks <body> when it is done: data-rendered="ok" at the end of a
#      successful render (with counts: data-lanes, data-checks, ...) and data-errors with every
#      uncaught exception, unhandled rejection and console.error it saw. The dumped DOM must have the
#      first and not the second.
#   2. Chromium's own log (`--enable-logging=stderr`), which prints each console message as a CONSOLE
#      line: none may be at error level or mention "Uncaught" (this also catches errors thrown before
#      the page's handlers were installed, e.g. a syntax error in the script). Chromium 156 logs
#      every console level as INFO, so a bare console.error is caught by check 1 only.
#   Then `--screenshot` writes OUT.png.
#
# CHROMIUM=/path/to/browser picks the browser. Otherwise this installs Debian's chromium package
# (apt-get; through sudo when not root) if neither `chromium` nor `chromium-browser` is on PATH, and
# fonts-dejavu-core if fontconfig knows no font at all (then every glyph would render as a box).
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 FILE.html OUT.png" >&2
    exit 2
fi
page="$1"
shot="$2"
if [ ! -f "$page" ]; then
    echo "viz-browser-check: no such file: $page" >&2
    exit 2
fi

have() { command -v "$1" >/dev/null 2>&1; }

find_chromium() {
    local name
    if [ -n "${CHROMIUM:-}" ]; then
        command -v "$CHROMIUM"
        return
    fi
    for name in chromium chromium-browser; do
        if have "$name"; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

have_fonts() { have fc-list && [ -n "$(fc-list 2>/dev/null | head -n 1)" ]; }

# The packages to install: chromium if missing, a font if there is none.
packages=()
find_chromium >/dev/null || packages+=(chromium)
have_fonts || packages+=(fonts-dejavu-core)

if [ "${#packages[@]}" -gt 0 ]; then
    "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" viz-browser-check "${packages[@]}"
fi
if ! chromium="$(find_chromium)"; then
    echo "viz-browser-check: chromium was installed but is still not on PATH" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

url="file://$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"

# A throwaway profile per run (no lock or state shared with a desktop Chromium); root needs
# --no-sandbox; a container's /dev/shm is often too small for Chromium's shared memory. The virtual
# time budget lets the page's timers and the load event run to completion before the DOM is dumped.
flags=(
    --headless
    --no-sandbox
    --disable-gpu
    --disable-dev-shm-usage
    --no-first-run
    --hide-scrollbars
    --window-size=1600,1000
    --virtual-time-budget=5000
    --enable-logging=stderr
    --v=0
)

echo "viz-browser-check: $("$chromium" --version 2>/dev/null || echo "$chromium")"

# 1. The rendered DOM and the console.
echo "viz-browser-check: $chromium ${flags[*]} --user-data-dir=... --dump-dom $url"
status=0
timeout 120 "$chromium" "${flags[@]}" --user-data-dir="$work/profile-dom" --dump-dom "$url" \
    >"$work/dom.html" 2>"$work/chromium.log" || status=$?
if [ "$status" -ne 0 ]; then
    echo "viz-browser-check: FAILED: chromium --dump-dom exited with status $status; its log:" >&2
    tail -n 40 "$work/chromium.log" >&2
    exit 1
fi

failures=()

# The <body> start tag of the dumped DOM carries the page's verdict in data-* attributes. It is the
# first one after </head>: the head's scripts may well mention "<body" in their text.
dom="$(tr '\n' ' ' <"$work/dom.html")"
body_tag="$(printf '%s' "${dom#*</head>}" | grep -o '<body[^>]*>' | head -n 1 || true)"
attribute() {
    # The value of data-$1 in the body tag (the serializer's entities decoded); empty when absent.
    printf '%s' "$body_tag" | sed -n "s/.* data-$1=\"\\([^\"]*\\)\".*/\\1/p" \
        | sed -e 's/&quot;/"/g' -e 's/&lt;/</g' -e 's/&gt;/>/g' -e 's/&#39;/'"'"'/g' -e 's/&amp;/\&/g'
}
if [ -z "$body_tag" ]; then
    failures+=("the dumped DOM has no <body>")
else
    rendered="$(attribute rendered)"
    errors="$(attribute errors)"
    if [ "$rendered" != "ok" ]; then
        failures+=("the page did not finish rendering (body data-rendered=\"$rendered\", expected \"ok\")")
    fi
    if [ -n "$errors" ]; then
        failures+=("the page recorded errors: $errors")
    fi
fi

# Console messages in Chromium's log look like
#   [pid:tid:date:ERROR:CONSOLE(123)] "Uncaught TypeError: ...", source: file:///... (123)
# (the level is INFO for console.log, WARNING for console.warn, ERROR for console.error and
# uncaught exceptions; older builds log every level as INFO, hence the "Uncaught" match too).
console_errors="$(grep -E ':ERROR:CONSOLE|CONSOLE.*Uncaught|Uncaught (exception|[A-Za-z]*Error)' \
    "$work/chromium.log" || true)"
if [ -n "$console_errors" ]; then
    failures+=("console errors in chromium's log:"$'\n'"$console_errors")
fi
console_lines="$(grep -c 'CONSOLE' "$work/chromium.log" || true)"

if [ "${#failures[@]}" -gt 0 ]; then
    echo "viz-browser-check: FAILED for $page:" >&2
    for failure in "${failures[@]}"; do
        echo "  - $failure" >&2
    done
    exit 1
fi

echo "viz-browser-check: checked: body data-rendered=\"ok\"; no errors recorded by the page; \
$console_lines console line(s) in chromium's log, none at error level or uncaught"
# Whatever counts the page reported (data-lanes, data-checks, data-messages, ...).
counts="$(printf '%s' "$body_tag" | grep -o 'data-[a-z-]*="[^"]*"' | grep -v -E '^data-(rendered|errors)=' \
    | tr '\n' ' ' || true)"
if [ -n "$counts" ]; then
    echo "viz-browser-check: the page reported: $counts"
fi

# 2. The screenshot.
echo "viz-browser-check: $chromium ${flags[*]} --user-data-dir=... --screenshot=$shot $url"
status=0
timeout 120 "$chromium" "${flags[@]}" --user-data-dir="$work/profile-shot" --screenshot="$shot" "$url" \
    >"$work/shot.out" 2>"$work/shot.log" || status=$?
if [ "$status" -ne 0 ] || [ ! -s "$shot" ]; then
    echo "viz-browser-check: FAILED: chromium --screenshot exited with status $status or wrote no $shot; its log:" >&2
    tail -n 40 "$work/shot.log" >&2
    exit 1
fi
echo "viz-browser-check: OK: $page renders without errors; screenshot in $shot"
