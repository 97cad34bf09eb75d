#!/usr/bin/env bash
# The web app in a real browser: tests/browser/run.js (Playwright's playwright-core driving
# Debian's chromium) against a freshly started `mus2pic serve` (temporary data folder, --port 0,
# renderer sonic, small posters). Installs the npm dependencies from the lock file when missing.
#   MUS2PIC             the binary (set by CTest)
#   MUS2PIC_SOURCE_DIR  the repository (default: two folders up from this script)
#   M2P_SCREENSHOTS     a folder to write each view's screenshot to (e.g. docs/screenshots)
set -euo pipefail
: "${MUS2PIC:?MUS2PIC must name the binary}"
src="${MUS2PIC_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
MUS2PIC="$(cd "$(dirname "$MUS2PIC")" && pwd)/$(basename "$MUS2PIC")"
export MUS2PIC

command -v node >/dev/null || { echo "node is not installed (scripts/install-deps.sh --test)"; exit 1; }
chromium="${M2P_CHROMIUM:-/usr/bin/chromium}"
[[ -x "$chromium" ]] || { echo "chromium is not installed at $chromium (scripts/install-deps.sh --test)"; exit 1; }

if [[ ! -f "$src/tests/browser/node_modules/playwright-core/package.json" ]]; then
  echo "test_browser: npm ci --prefix tests/browser"
  npm ci --prefix "$src/tests/browser" --no-audit --no-fund --loglevel=error
fi

cd "$src/tests/browser"
exec node run.js
