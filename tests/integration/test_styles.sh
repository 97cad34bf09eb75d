#!/usr/bin/env bash
# `mus2pic styles`: one line per preset (at least the 12 required), details of
# one preset, JSON output, and a clear error with a suggestion for a typo.
set -euo pipefail
: "${MUS2PIC:?MUS2PIC must name the binary}"

out=$("$MUS2PIC" styles)
n=$(printf '%s\n' "$out" | wc -l)
[[ $n -ge 12 ]] || { echo "expected >= 12 presets, got $n"; exit 1; }
for s in abstract realistic minimalist synthwave watercolor album-cover ink oil-painting cinematic \
         retro-poster geometric vaporwave; do
  # a here-string, not `printf | grep -q`: grep -q stops at the first match and, under pipefail,
  # printf's SIGPIPE would fail the test at random
  grep -q "^$s " <<<"$out" || { echo "preset $s missing from: $out"; exit 1; }
done

detail=$("$MUS2PIC" styles "Album cover")
grep -q '^template: .*{title}' <<<"$detail" || { echo "no template in: $detail"; exit 1; }
grep -q '{genre_hint}' <<<"$detail" || { echo "variables not listed"; exit 1; }

"$MUS2PIC" styles --json | python3 -c '
import json, sys
a = json.load(sys.stdin)
assert len(a) >= 12, len(a)
for p in a:
    assert p["name"] and p["description"] and p["template"] and p["negative"], p
    assert 0 <= p["visual"]["saturation"] <= 1
'

set +e
err=$("$MUS2PIC" styles synthwav 2>&1 >/dev/null)
rc=$?
set -e
[[ $rc -eq 1 ]] || { echo "unknown style exit $rc, expected 1"; exit 1; }
grep -q "style_unknown" <<<"$err" && grep -q "did you mean 'synthwave'" <<<"$err" || { echo "bad error: $err"; exit 1; }
echo "styles: ok ($n presets)"
