#!/usr/bin/env bash
# The headless batch in the real application (Debian's Blender 4.3, via ../shared/tools/real-blender):
# build the zip, install it into a throwaway profile, make a .blend with three meshes, run
#   blender -b x.blend --command text_to_texture --provider PROCEDURAL --prompt "rusty iron" ...
# and check its exit codes, its progress lines and the materials in the saved file.
#
#   tests/gui/cli_check.sh            # from anywhere; needs `real-blender setup` done once
set -euo pipefail

if [ "${1:-}" != "--inside" ]; then
  cd "$(dirname "$0")/../.."
  RB=${REAL_BLENDER:-$(cd .. && pwd)/shared/tools/real-blender}
  make build >/dev/null
  ZIP=$(ls -t dist/text_to_texture-*.zip | head -1)
  echo "built $ZIP"
  exec "$RB" sh "bash /src/tests/gui/cli_check.sh --inside /src/$ZIP"
fi

# ---- inside the chroot: /src is the checkout ------------------------------------------------
ZIP=$2
export BLENDER_USER_RESOURCES=/tmp/t2t-cli-profile
W=/tmp/t2t-cli
rm -rf "$BLENDER_USER_RESOURCES" "$W"
mkdir -p "$W/out"
FAILS=0
check() {  # check DESCRIPTION COMMAND...: run a test, say ok/FAIL, keep going
  local what=$1; shift
  if "$@"; then echo "ok    $what"; else echo "FAIL  $what"; FAILS=$((FAILS + 1)); fi
}
bl() { blender --python-exit-code 3 "$@"; }
blender --version | head -1

# 1. install the zip the way "Install from Disk…" does, and keep it enabled in the profile
bl -b --python-expr "
import bpy
r = bpy.ops.extensions.package_install_files(filepath='$ZIP', repo='user_default',
                                             enable_on_install=True)
assert r == {'FINISHED'}, r
bpy.ops.wm.save_userpref()
" >"$W/install.log" 2>&1 || { cat "$W/install.log"; exit 1; }
echo "installed $(basename "$ZIP") into $BLENDER_USER_RESOURCES"

# 2. a scene: Crate, Ball, Bust (no UVs: must be unwrapped), Bystander, a camera; Crate selected
bl -b --python-expr "
import bpy
for o in list(bpy.data.objects):
    bpy.data.objects.remove(o)
for op, name, x in ((bpy.ops.mesh.primitive_cube_add, 'Crate', 0),
                    (bpy.ops.mesh.primitive_uv_sphere_add, 'Ball', 3),
                    (bpy.ops.mesh.primitive_monkey_add, 'Bust', 6),
                    (bpy.ops.mesh.primitive_cylinder_add, 'Bystander', 9)):
    op(location=(x, 0, 0))
    bpy.context.active_object.name = name
bust = bpy.data.objects['Bust'].data
while bust.uv_layers:
    bust.uv_layers.remove(bust.uv_layers[0])
bpy.ops.object.camera_add()
for o in bpy.context.view_layer.objects:
    o.select_set(o.name == 'Crate')
bpy.ops.wm.save_as_mainfile(filepath='$W/x.blend')
" >"$W/make.log" 2>&1 || { cat "$W/make.log"; exit 1; }
echo "made $W/x.blend"

# 3. the main run: three meshes by name, saved to a new file in another folder
echo '$ blender -b x.blend --command text_to_texture --provider PROCEDURAL --prompt "rusty iron" --objects Crate Ball Bust --output out/y.blend'
RC=0
blender -b "$W/x.blend" --command text_to_texture --provider PROCEDURAL --prompt "rusty iron" \
  --objects Crate Ball Bust --output "$W/out/y.blend" >"$W/run.log" 2>"$W/run.err" || RC=$?
grep '^\[t2t\]' "$W/run.log" | sed 's/^/    /' || true
check "exit code 0 (got $RC)" test "$RC" = 0
check "one progress line per state change, queued first, applied 100% last" python3 - "$W/run.log" <<'EOF'
import re, sys
seq = {}
for line in open(sys.argv[1]):
    m = re.match(r"^\[t2t\] '(.+)': ([a-z]+) (\d+)% - ", line)
    if m:
        seq.setdefault(m[1], []).append((m[2], int(m[3])))
ok = set(seq) == {"Crate", "Ball", "Bust"}
for name, s in seq.items():
    states = [x for x, _ in s]
    ok &= states[0] == "queued" and s[-1] == ("applied", 100)
    ok &= all(a != b for a, b in zip(states, states[1:]))
sys.exit(0 if ok else 1)
EOF
check "summary line" grep -qx '\[t2t\] Textured 3 of 3 object(s) with Offline (procedural)' "$W/run.log"
check "saved line" grep -qx "\[t2t\] Saved $W/out/y.blend" "$W/run.log"
check "no traceback" bash -c "! grep -q Traceback '$W/run.log' '$W/run.err'"

# 4. the saved file, opened by a fresh Blender: materials, images on disk, UVs, the bystander
RC=0
bl -b "$W/out/y.blend" --python-expr "
import bpy, os
for name in ('Crate', 'Ball', 'Bust'):
    obj = bpy.data.objects[name]
    mat = obj.active_material
    assert mat is not None and mat.name.startswith('T2T ' + name), (name, mat)
    images = [n.image for n in mat.node_tree.nodes if n.bl_idname == 'ShaderNodeTexImage']
    assert len(images) == 4, (name, images)
    for img in images:
        path = bpy.path.abspath(img.filepath)
        assert os.path.isfile(path), (name, img.filepath, path)
    print('    y.blend:', name, '->', mat.name, '(%d maps, UV %s)' % (
        len(images), [u.name for u in obj.data.uv_layers]))
assert 'T2T_UV' in bpy.data.objects['Bust'].data.uv_layers
assert bpy.data.objects['Bystander'].active_material is None
recs = bpy.context.scene.text_to_texture.jobs
assert sorted(r.state for r in recs) == ['applied'] * 3, [r.state for r in recs]
" >"$W/verify.log" 2>&1 || RC=$?
grep '^    y.blend' "$W/verify.log" || true
check "y.blend has the three materials, maps on disk, T2T_UV on Bust" test "$RC" = 0
[ "$RC" = 0 ] || tail -20 "$W/verify.log"
RC=0
bl -b "$W/x.blend" --python-expr "
import bpy
assert all(o.active_material is None for o in bpy.data.objects if o.type == 'MESH')
" >"$W/src.log" 2>&1 || RC=$?
check "x.blend is untouched" test "$RC" = 0

# 5. exit codes of the other outcomes
run() {  # run LOG ARGS...: the command on x.blend, exit code in $RC
  local log=$1; shift
  RC=0
  blender -b "$W/x.blend" --command text_to_texture "$@" >"$W/$log.log" 2>"$W/$log.err" || RC=$?
}
run selection --prompt oak
check "the saved selection by default: exit 0, Crate only, not saved (got $RC)" \
  bash -c "[ $RC = 0 ] && grep -q \"^\[t2t\] 'Crate': applied 100%\" $W/selection.log &&
           ! grep -q \"'Ball'\" $W/selection.log && grep -q '^\[t2t\] Not saved' $W/selection.log"
run timeout --prompt oak --resolution 4096 --objects Crate Ball Bust --timeout 0.001
grep -e '^\[t2t\] Timed out' -e '^\[t2t\] Textured' "$W/timeout.log" | sed 's/^/    /' || true
check "timeout: jobs canceled, exit 1 (got $RC)" \
  bash -c "[ $RC = 1 ] && grep -q \"^\[t2t\] 'Ball': canceled\" $W/timeout.log"
run badname --prompt oak --objects Crat
grep '^text_to_texture:' "$W/badname.err" | sed 's/^/    /' || true
check "unknown object: exit 2 with one line of ours (got $RC)" \
  bash -c "[ $RC = 2 ] && [ \$(grep -c '^text_to_texture:' $W/badname.err) = 1 ] &&
           grep -q \"did you mean 'Crate'\" $W/badname.err && ! grep -q '^.t2t.' $W/badname.log"
run badarg --provider NOPE
check "bad provider: exit 2 (got $RC)" test "$RC" = 2
run help --help
check "--help: exit 0 and explains the exit status (got $RC)" \
  bash -c "[ $RC = 0 ] && grep -q '^exit status:' $W/help.log"

echo
if [ "$FAILS" = 0 ]; then echo "cli_check: all passed"; else echo "cli_check: $FAILS FAILED"; fi
exit "$FAILS"
