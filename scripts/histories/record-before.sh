#!/usr/bin/env bash
# Records the histories of the code before a patch, with that code: a worktree of the commit
# before the patch (node_modules and .tools linked from this checkout), the recorder copied in and
# run there, its histories written to test/histories/before-<patch>/ of this checkout.
#   scripts/histories/record-before.sh run-waiting-signal 515fa32^
set -euo pipefail
patch="$1" commit="$2"
root="$(cd "$(dirname "$0")/../.." && pwd)"
old="$(dirname "$root")/replay-old-$patch"
out="$root/test/histories/before-$patch"
git -C "$root" worktree add --detach "$old" "$commit"
trap 'git -C "$root" worktree remove --force "$old"' EXIT
ln -s "$(readlink -f "$root/node_modules")" "$old/node_modules"
ln -s "$(readlink -f "$root/.tools")" "$old/.tools"
mkdir -p "$old/scripts/histories" "$out"
cp "$root/scripts/histories/recorder.ts" "$root/scripts/histories/before-$patch.ts" "$old/scripts/histories/"
(cd "$old" && node --import tsx "scripts/histories/before-$patch.ts" "$out")
