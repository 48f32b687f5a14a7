#!/usr/bin/env bash
# Render a report's index.html headless in Chromium, as a reader's laptop would show it, and save
# screenshots to look at: the first screen (1366x768) and the whole page (1366 wide).
#
#   bash tests/render-report.sh reports/quickstart [OUT_DIR]
#
# Needs Chromium (Debian: apt-get install chromium). Without it, prints a notice and exits 0.
# The page is opened from disk (file://) with networking features off, as a self-contained report
# must work; the script fails if the page is missing or Chromium cannot render it.
set -euo pipefail
report="${1:?usage: tests/render-report.sh REPORT_DIR [OUT_DIR]}"
out="${2:-$report/screenshots}"
page="$(cd "$report" && pwd)/index.html"
[ -f "$page" ] || { echo "no index.html in $report" >&2; exit 1; }
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
    echo "skip: no Chromium found (apt-get install chromium); $page not rendered"
    exit 0
fi
mkdir -p "$out"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
shot() {
    "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$profile" --window-size="$1" \
        --screenshot="$2" "file://$page" >/dev/null 2>&1
    [ -s "$2" ] || { echo "Chromium wrote no screenshot for $page" >&2; exit 1; }
    echo "wrote $2"
}
shot 1366,768 "$out/first-screen.png"
# Tall enough for the whole report; the page height is read from nothing but a generous guess.
shot 1366,9000 "$out/full-page.png"
