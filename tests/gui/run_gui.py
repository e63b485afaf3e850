#!/usr/bin/env python3
"""`make test-gui`: the extension in the real Blender window, driven like an artist drives it.

Debian's Blender 4.3 runs on a virtual screen (../shared/tools/real-blender, next to the
checkout). This driver, on the host:

1. builds the extension zip (Blender's own builder) into build/gui/dist/;
2. starts the Meshy emulator (tests/emulators/meshy.py) on 127.0.0.1 — the chroot shares the
   host's loopback network;
3. starts the real Blender (`--factory-startup --online-mode`) with a throwaway profile
   (build/gui/profile, via BLENDER_USER_RESOURCES) and tests/gui/gui_scenario.py, which installs
   the zip, sets the Meshy key and base URL in the add-on preferences, builds three meshes,
   selects them and reports its state to build/gui/state.json;
4. with xdotool: closes the splash, clicks the sidebar's "Texture" tab, clicks the panel's
   "Texture 3 selected" button (found on a screenshot by the theme's button colour) and
   presses Esc over the viewport;
5. runs three batches: Offline (procedural) to the end, Meshy to the end, Meshy canceled with Esc;
   screenshots into build/gui/: during.png, after.png, meshy.png, meshy_after.png,
   canceled.png (and *_panel.png crops of the sidebar);
6. checks job states, the materials on the objects (the Meshy maps by their pixels), that the
   modal operator ended, that Esc canceled (a task Meshy would not stop is kept, unapplied) and
   nothing was applied afterwards, and that Blender logged no Python traceback from the
   extension; prints a summary and exits 1 on any failure.

Processes it starts (emulator, Blender) are always stopped, by their own process group.

    .venv/bin/python tests/gui/run_gui.py [--keep-open] [--invoke-from-script]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RB = Path(os.environ.get("REAL_BLENDER") or ROOT.parent / "shared" / "tools" / "real-blender")
CHROOT = Path(os.environ.get("REAL_BLENDER_ROOT", "/var/tmp/real-blender-root"))
OUT = ROOT / "build" / "gui"
INSIDE = "/src/build/gui"  # OUT as Blender sees it (real-blender mounts the checkout on /src)
LOCK = Path("/tmp/t2t-test-gui.lock")
PIDFILE = ROOT / "build" / "gui-blender.pid"  # outside OUT: survives the wipe at start

MESHY_JOB_SECONDS = 10.0
PROCEDURAL_PROMPT = "weathered bronze with green patina"
MESHY_PROMPT = "rusty iron plates with rivets"
PROVIDER_ENV = re.compile(r"^(MESHY|TRIVERSE|DRESSX|SCENARIO)_|^TEXT_TO_TEXTURE_")
MAP_ROLES = ("Base Color", "Roughness", "Metallic", "Normal")
MESHY_FILLS = {"Base Color": (200, 60, 40), "Roughness": (170, 170, 170),
               "Metallic": (60, 60, 60)}  # tests/emulators/base.py ROLE_PIXELS


class Fail(Exception):
    """A step that cannot go on; the message says what was expected."""


# ---- results --------------------------------------------------------------------------------

class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []  # (ok|FAIL|warn, what, detail)
        self.times: list[tuple[str, float]] = []
        self.t0 = time.monotonic()

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        self.rows.append(("ok" if ok else "FAIL", what, detail))
        print(f"  {'ok  ' if ok else 'FAIL'}  {what}" + (f" — {detail}" if detail else ""),
              flush=True)
        return ok

    def warn(self, what: str, detail: str = "") -> None:
        self.rows.append(("warn", what, detail))
        print(f"  warn  {what}" + (f" — {detail}" if detail else ""), flush=True)

    def note(self, text: str) -> None:
        print(f"        {text}", flush=True)

    def phase(self, name: str, started: float) -> None:
        self.times.append((name, time.monotonic() - started))

    @property
    def failed(self) -> bool:
        return any(status == "FAIL" for status, _w, _d in self.rows)


def step(text: str) -> None:
    print(f"[gui] {text}", flush=True)


# ---- the virtual screen ---------------------------------------------------------------------

def rb(*args: str, capture: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    """real-blender, run from the checkout (so that /src inside is this repository)."""
    return subprocess.run([str(RB), *args], cwd=ROOT, timeout=timeout, check=True,
                          stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                          stderr=subprocess.PIPE)


def xdo(commands: str) -> None:
    rb("sh", f"xdotool {commands}")


def shot(name: str) -> Path:
    path = OUT / name
    rb("shot", str(path))
    return path


def crop(src: Path, dst: str, box: tuple[int, int, int, int]) -> Path:
    x, y, w, h = box
    rb("sh", f"convert {INSIDE}/{src.name} -crop {w}x{h}+{x}+{y} +repage {INSIDE}/{dst}")
    return OUT / dst


def pixels(src: Path, box: tuple[int, int, int, int]) -> list[tuple[int, int, int]]:
    """RGB pixels of a rectangle of a screenshot, row by row (ImageMagick in the chroot)."""
    x, y, w, h = box
    raw = rb("sh", f"convert {INSIDE}/{src.name} -crop {w}x{h}+{x}+{y} +repage -depth 8 rgb:-",
             capture=True).stdout
    if len(raw) != w * h * 3:
        raise Fail(f"reading pixels of {src.name}: got {len(raw)} bytes for {w}x{h}")
    return [(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3)]


def near(a: tuple[int, ...] | list[int], b: tuple[int, ...] | list[int], tol: int = 6) -> bool:
    return all(abs(int(p) - int(q)) <= tol for p, q in zip(a, b))


# ---- processes ------------------------------------------------------------------------------

def chroot_guis() -> list[int]:
    """Blender processes with a window running in the real-blender root (any owner)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            root = os.readlink(proc / "root")
        except OSError:
            continue
        if (argv and Path(argv[0].decode(errors="replace")).name == "blender"
                and root == str(CHROOT)
                and not {b"-b", b"--background"} & set(argv)):
            found.append(int(proc.name))
    return found


def stop_group(proc: subprocess.Popen, name: str) -> None:
    """Stop a process we started and everything it started (its own session), except an Xvfb
    that real-blender may have started in it: the virtual screen stays up for the next user."""
    if proc.poll() is None or group_members(proc.pid):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            members = [p for p in group_members(proc.pid) if comm(p) != "Xvfb"]
            if not members:
                break
            for pid in members:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and any(
                    comm(p) != "Xvfb" for p in group_members(proc.pid)):
                time.sleep(0.2)
        step(f"stopped {name} (process group {proc.pid})")
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def group_members(pgid: int) -> list[int]:
    members = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.getpgid(int(proc.name)) == pgid:
                    members.append(int(proc.name))
            except OSError:
                pass
    return members


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def stale_own_blender() -> None:
    """A Blender left by an earlier run of this driver (killed before its cleanup): stop it."""
    if not PIDFILE.exists():
        return
    try:
        pgid = int(PIDFILE.read_text())
    except ValueError:
        pgid = 0
    left = [p for p in group_members(pgid) if comm(p) != "Xvfb"] if pgid > 1 else []
    for pid in left:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"blender" in cmd:
            step(f"stopping Blender pid {pid} left by an earlier run of this driver")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    PIDFILE.unlink(missing_ok=True)


# ---- talking to the in-Blender scenario ------------------------------------------------------

class Scenario:
    def __init__(self, blender: subprocess.Popen, log: Path) -> None:
        self.blender = blender
        self.log = log
        self.n = 0
        (OUT / "cmd").mkdir(parents=True, exist_ok=True)

    def events(self) -> list[dict]:
        path = OUT / "events.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line being written
        return out

    def state(self) -> dict:
        try:
            return json.loads((OUT / "state.json").read_text())
        except (OSError, json.JSONDecodeError):
            return {}

    def alive(self) -> None:
        if self.blender.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
            raise Fail(f"Blender exited (code {self.blender.returncode}); its log ends:\n{tail}")
        errors = [e for e in self.events() if e["event"] == "error"]
        if errors:
            raise Fail(f"the in-Blender scenario failed in {errors[0]['where']}: "
                       f"{errors[0]['error']}\n{errors[0].get('traceback', '')}")

    def wait(self, what: str, pred: Callable[[], Any], timeout: float, every: float = 0.3) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.alive()
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                raise Fail(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(every)

    def command(self, do: str, timeout: float = 60, **args: Any) -> Any:
        self.n += 1
        name = f"{self.n:04d}.json"
        tmp = OUT / "cmd" / f"{name}.tmp"
        tmp.write_text(json.dumps({"do": do, **args}))
        tmp.replace(OUT / "cmd" / name)
        ack = self.wait(f"Blender to do {do!r}", lambda: next(
            (e for e in self.events() if e["event"] == "ack" and e["cmd"] == name), None), timeout)
        return ack["result"]

    def fresh_state(self, after: float, timeout: float = 30) -> dict:
        """A state written after `after` (seconds on the scenario's clock, from state['t'])."""
        return self.wait("a fresh state from Blender",
                         lambda: (s := self.state()) and s.get("t", -1) > after and s, timeout)

    def job_events(self, ids: set[str]) -> dict[str, list[dict]]:
        seen: dict[str, list[dict]] = {i: [] for i in ids}
        for e in self.events():
            if e["event"] == "job" and e["id"] in ids:
                seen[e["id"]].append(e)
        return seen


# ---- the screen layout ----------------------------------------------------------------------

class Layout:
    """Screen coordinates (top-left origin) of the parts of Blender's window we click on."""

    def __init__(self, ready: dict) -> None:
        win = ready["window"]
        self.height = win["height"]
        ui = ready["regions"]["UI"]
        self.ui = (ui["x"], self.height - (ui["y"] + ui["height"]), ui["width"], ui["height"])
        area = ready["area"]
        top = self.height - (area["y"] + area["height"])
        # an empty spot of the viewport, away from the objects, gizmos and the sidebar
        self.viewport_spot = (area["x"] + 260, top + area["height"] - 120)
        self.theme = ready["theme"]
        self.scale = ready["ui_scale"] * ready["pixel_size"]

    @property
    def tab_x(self) -> int:
        x, _y, w, _h = self.ui
        return x + w - round(14 * self.scale)


def open_texture_tab(sc: Scenario, lay: Layout, rep: Report) -> None:
    """Click the sidebar's "Texture" tab. The tab strip's order (Item, Tool, View, add-ons) and
    sizes are deterministic with --factory-startup, so the known spot is tried first; then the
    strip is walked. The scenario reports the region's active category: no screenshot needed."""
    _x, top, _w, h = lay.ui
    candidates = [top + 172]  # where it is at this screen's UI scale
    candidates += [top + dy for dy in range(12, min(h, 480), 14)]
    for i, y in enumerate(candidates):
        t = sc.state().get("t", 0)
        xdo(f"mousemove {lay.tab_x} {y} click 1 sleep 0.2 mousemove {lay.viewport_spot[0]} "
            f"{lay.viewport_spot[1]}")
        state = sc.fresh_state(t + 0.6)
        try:
            state = sc.wait("the tab to switch", lambda: (s := sc.state()).get(
                "category") == "Texture" and s, 3)
        except Fail:
            continue
        rep.check(True, "the sidebar's Texture tab opens with a click",
                  f"at ({lay.tab_x}, {y}), try {i + 1}")
        return
    raise Fail(f"no click on the sidebar's tab strip (x={lay.tab_x}) opened the Texture tab; "
               f"last category {state.get('category')!r}")


def find_button(lay: Layout, name: str) -> tuple[int, int]:
    """The panel's big "Texture N selected" button on a screenshot: the first run, down the
    sidebar, of at least 1.2 rows of the theme's button colour at the panel's left edge that
    also spans most of the panel's width (labels and split fields leave the left edge empty)."""
    x, top, w, h = lay.ui
    probe = shot(name)
    col_x = x + round(19 * lay.scale)
    column = pixels(probe, (col_x, top, 1, h))
    colour = lay.theme["tool"]
    need = round(24 * lay.scale)
    runs, start = [], None
    for i, px in enumerate([*column, (-99, -99, -99)]):
        if near(px, colour, 4):
            start = i if start is None else start
        elif start is not None:
            runs.append((start, i - start))
            start = None
    for y0, length in runs:
        if length < need:
            continue
        # a row above the label and icon: the button's colour almost all the way across
        span = w - round(19 * lay.scale) - round(45 * lay.scale)
        row = pixels(probe, (col_x, top + y0 + length // 5, span, 1))
        if sum(near(px, colour, 4) for px in row) >= 0.9 * span:
            return x + (w - round(24 * lay.scale)) // 2, top + y0 + length // 2
    raise Fail(f"no enabled 'Texture N selected' button on {name} (runs of the button colour "
               f"{colour} at x={col_x}: {runs}); is it greyed out? see {probe}")


def press_button(sc: Scenario, lay: Layout, rep: Report, label: str, script_invoke: bool,
                 count: int = 3) -> list[str]:
    """Start a batch the way an artist does and return its job ids (in list order)."""
    before = {j["id"] for j in sc.state().get("jobs", [])}
    if script_invoke:
        result = sc.command("invoke")
        rep.check(result == ["RUNNING_MODAL"], f"{label}: the operator runs modally", str(result))
    else:
        bx, by = find_button(lay, f"probe_{label}.png")
        vx, vy = lay.viewport_spot
        xdo(f"mousemove {bx} {by} sleep 0.3 click 1 sleep 0.3 mousemove {vx} {vy}")
    jobs = sc.wait(f"{label}: {count} new jobs after pressing 'Texture {count} selected'",
                   lambda: len(new := [j for j in sc.state().get("jobs", [])
                                       if j["id"] not in before]) >= count and new, 60)
    rep.check(len(jobs) == count and len({j["batch"] for j in jobs}) == 1,
              f"{label}: the button starts one batch of {count} jobs",
              ", ".join(f"{j['object']}={j['state']}" for j in jobs))
    rep.check(sc.state().get("modal_running") == 1 or script_invoke,
              f"{label}: the modal operator is running (timer on the window)",
              f"modal_running={sc.state().get('modal_running')}")
    return [j["id"] for j in jobs]


def jobs_of(state: dict, ids: list[str]) -> list[dict]:
    by_id = {j["id"]: j for j in state.get("jobs", [])}
    return [by_id[i] for i in ids if i in by_id]


TERMINAL = {"applied", "failed", "canceled"}


def wait_terminal(sc: Scenario, ids: list[str], label: str, timeout: float) -> dict:
    return sc.wait(f"{label}: every job to finish",
                   lambda: (s := sc.state()) and len(jobs_of(s, ids)) == len(ids)
                   and all(j["state"] in TERMINAL for j in jobs_of(s, ids)) and s, timeout)


def wait_modal_end(sc: Scenario, rep: Report, label: str) -> None:
    try:
        sc.wait("the modal operator to end", lambda: sc.state().get("modal_running") == 0, 15)
        rep.check(True, f"{label}: the modal operator ended (its timer removed)")
    except Fail as exc:
        rep.check(False, f"{label}: the modal operator ended (its timer removed)", str(exc))


def check_applied(rep: Report, state: dict, ids: list[str], label: str,
                  size: list[int] | None = None, fills: dict | None = None,
                  not_materials: set[str] | None = None) -> dict[str, str]:
    """Every job applied, and each object wears that job's material with the four maps."""
    jobs = jobs_of(state, ids)
    rep.check(all(j["state"] == "applied" for j in jobs), f"{label}: all jobs applied",
              ", ".join(f"{j['object']}={j['state']} ({j['message']})" for j in jobs))
    worn = {}
    for job in jobs:
        obj = state["objects"].get(job["object"], {})
        mat = obj.get("material") or {}
        worn[job["object"]] = mat.get("name", "")
        problems = []
        if not mat:
            problems.append("no material")
        elif mat["name"] != job["material"]:
            problems.append(f"wears {mat['name']!r}, the job made {job['material']!r}")
        if mat and not mat.get("bsdf"):
            problems.append("no Principled BSDF")
        if mat and mat.get("link") != "OBJECT":
            problems.append(f"slot link {mat.get('link')!r} (expected an object-linked override)")
        images = mat.get("images", {}) if mat else {}
        for role in MAP_ROLES:
            img = images.get(role)
            if not img:
                problems.append(f"no {role} map")
                continue
            if not img.get("to"):
                problems.append(f"{role} map not connected")
            if not (img["size"][0] and img["size"][1]):
                problems.append(f"{role} map has no pixels")
            elif size and img["size"] != size:
                problems.append(f"{role} map is {img['size']}, expected {size}")
            if fills and role in fills and not near(img.get("centre") or (), fills[role], 3):
                problems.append(f"{role} map centre {img.get('centre')} is not the provider's "
                                f"{list(fills[role])}")
        if not_materials and mat and mat.get("name") in not_materials:
            problems.append(f"still the earlier material {mat['name']!r}")
        rep.check(not problems, f"{label}: {job['object']!r} wears its new material",
                  "; ".join(problems) or f"{mat.get('name')} with "
                  + ", ".join(f"{r} {images[r]['size'][0]}px" for r in MAP_ROLES))
    return worn


def panel_crop(lay: Layout, src: Path) -> None:
    x, top, w, h = lay.ui
    crop(src, src.stem + "_panel.png", (x - 6, top, w + 6, h))


# ---- the scenario ---------------------------------------------------------------------------

def run(args: argparse.Namespace, rep: Report) -> None:
    procs: list[tuple[subprocess.Popen, str]] = []
    emulators: list[Any] = []
    try:
        _run(args, rep, procs, emulators)
    finally:
        for proc, name in reversed(procs):
            if proc.poll() is None or group_members(proc.pid):
                stop_group(proc, name)
        PIDFILE.unlink(missing_ok=True)
        for emu in emulators:
            emu.stop()


def _run(args: argparse.Namespace, rep: Report, procs: list, emulators: list) -> None:
    t = time.monotonic()
    step("building the extension zip")
    sys.path.insert(0, str(ROOT))
    from tools.ext_dev import build_zip

    zip_path = build_zip(OUT / "dist")
    rep.phase("build the zip", t)

    step(f"starting the Meshy emulator (jobs take {MESHY_JOB_SECONDS:.0f} s)")
    from tests.emulators.meshy import MeshyEmulator

    emu = MeshyEmulator(job_seconds=MESHY_JOB_SECONDS).start()  # a thread of this process
    emulators.append(emu)
    env_lines = {"MESHY_API_BASE": emu.url, "MESHY_API_KEY": emu.api_key}
    step(f"emulator at {emu.url}")

    (OUT / "settings.json").write_text(json.dumps({
        "zip": f"{INSIDE}/dist/{zip_path.name}",
        "prefs": {"meshy_api_key": env_lines["MESHY_API_KEY"],
                  "meshy_api_base": env_lines["MESHY_API_BASE"]},
    }))

    env = {k: v for k, v in os.environ.items() if not PROVIDER_ENV.match(k)}
    env["BLENDER_USER_RESOURCES"] = f"{INSIDE}/profile"  # throwaway: wiped at every run
    env["T2T_GUI_DIR"] = INSIDE
    log_path = OUT / "blender.log"
    step("starting the real Blender (Debian's 4.3) on the virtual screen :99")
    t = time.monotonic()
    with open(log_path, "wb") as log:
        blender = subprocess.Popen(
            [str(RB), "run", "--factory-startup", "--online-mode",
             "--python", "/src/tests/gui/gui_scenario.py"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    procs.append((blender, "Blender"))
    PIDFILE.write_text(str(blender.pid))
    sc = Scenario(blender, log_path)
    ready = sc.wait("Blender to start and install the zip",
                    lambda: next((e for e in sc.events() if e["event"] == "ready"), None), 300)
    rep.phase("start Blender, install the zip", t)
    rep.check(ready["online"], "Blender runs with online access allowed (--online-mode)")
    rep.note(f"Blender {ready['blender']} (Python {ready['python']}), window "
             f"{ready['window']['width']}x{ready['window']['height']}, UI scale "
             f"{ready['ui_scale']:.2f}")
    lay = Layout(ready)

    # The splash (factory startup) covers the window: Esc closes it.
    vx, vy = lay.viewport_spot
    xdo(f"mousemove {vx} {vy} sleep 0.3 key Escape")
    time.sleep(1.0)
    open_texture_tab(sc, lay, rep)
    state = sc.state()
    rep.check(state.get("sidebar") is True and state.get("mode") == "OBJECT"
              and all(o["selected"] for o in state["objects"].values())
              and len(state["objects"]) == 3,
              "three meshes selected in Object Mode, sidebar open",
              ", ".join(state.get("objects", {})))

    # ---- 1. Offline (procedural): the whole way ----------------------------------------------
    step("batch 1: Offline (procedural), 2048 px")
    t = time.monotonic()
    sc.command("configure", provider="PROCEDURAL", prompt=PROCEDURAL_PROMPT, resolution="2048")
    time.sleep(1.0)  # a redraw with the new settings
    ids = press_button(sc, lay, rep, "procedural", args.invoke_from_script)
    try:  # the screenshot is worth more with a progress bar part-way
        sc.wait("procedural: a job part-way", lambda: any(
            j["state"] not in TERMINAL and j["progress"] >= 0.2
            for j in jobs_of(sc.state(), ids)), 60, every=0.1)
    except Fail:
        pass
    time.sleep(0.3)  # let the panel redraw with the progress
    during = shot("during.png")
    if all(j["state"] in TERMINAL for j in jobs_of(sc.state(), ids)):
        rep.warn("procedural: during.png may show the finished batch (it ran too fast)")
    panel_crop(lay, during)
    state = wait_terminal(sc, ids, "procedural", 300)
    wait_modal_end(sc, rep, "procedural")
    procedural = check_applied(rep, sc.state(), ids, "procedural", size=[2048, 2048])
    seen = sc.job_events(set(ids))
    rep.check(all(any(e["state"] not in ("queued", "applied") for e in seen[i]) for i in ids),
              "procedural: every job was seen working before it was applied",
              "; ".join(" > ".join(e["state"] for e in seen[i]) for i in ids))
    time.sleep(1.5)
    after = shot("after.png")
    panel_crop(lay, after)
    rep.phase("procedural batch (3 objects, 2048 px)", t)

    # ---- 2. Meshy (emulator): the whole way ---------------------------------------------------
    step("batch 2: Meshy on the emulator")
    t = time.monotonic()
    sc.command("configure", provider="MESHY", prompt=MESHY_PROMPT)
    time.sleep(1.0)
    ids = press_button(sc, lay, rep, "meshy", args.invoke_from_script)
    sc.wait("meshy: a job running at the provider with some progress",
            lambda: any(j["state"] == "running" and 0 < j["progress"] < 1
                        for j in jobs_of(sc.state(), ids)), 90, every=0.2)
    time.sleep(1.5)
    meshy = shot("meshy.png")
    panel_crop(lay, meshy)
    state = sc.state()
    rep.check(any(j["state"] == "running" for j in jobs_of(state, ids)),
              "meshy: meshy.png shows jobs running with a progress bar",
              ", ".join(f"{j['object']} {j['state']} {j['progress']:.0%}"
                        for j in jobs_of(state, ids)))
    wait_terminal(sc, ids, "meshy", 240)
    wait_modal_end(sc, rep, "meshy")
    state = sc.state()
    meshy_worn = check_applied(rep, state, ids, "meshy", fills=MESHY_FILLS,
                               not_materials=set(procedural.values()))
    seen = sc.job_events(set(ids))
    rep.check(all(any(e["state"] == "running" for e in seen[i]) for i in ids),
              "meshy: every job went through 'running' before 'applied'",
              "; ".join(" > ".join(e["state"] for e in seen[i]) for i in ids))
    creates = [r for r in emu.recorded("POST") if re.search(r"retexture|text-to-texture", r.path)]
    rep.check(len(creates) == 3 and all(r.auth_ok for r in creates),
              "meshy: the emulator got one create per object, with the preferences' key",
              f"{len(creates)} create(s), auth ok: {[r.auth_ok for r in creates]}")
    info = {j["info"] for j in jobs_of(state, ids) if j["info"]}
    rep.check(bool(info), "meshy: the job list shows the Meshy balance", ", ".join(info))
    time.sleep(1.5)
    panel_crop(lay, shot("meshy_after.png"))
    rep.phase(f"Meshy batch (3 objects, emulator jobs {MESHY_JOB_SECONDS:.0f} s)", t)

    # ---- 3. Meshy again, canceled with Esc ----------------------------------------------------
    step("batch 3: Meshy, canceled with Esc over the viewport")
    t = time.monotonic()
    started, started_epoch = time.monotonic(), time.time()
    ids = press_button(sc, lay, rep, "cancel", args.invoke_from_script)
    sc.wait("cancel: a job running at the provider",
            lambda: any(j["state"] == "running" for j in jobs_of(sc.state(), ids)), 90, every=0.2)
    xdo(f"mousemove {vx} {vy} sleep 0.3 key Escape")
    esc_at = time.monotonic()

    def kept(j: dict) -> bool:  # Meshy would not stop a running task: its result is kept
        return j["state"] == "ready" and j["message"].startswith("Meshy finished the job you "
                                                                 "canceled")
    def settled() -> dict | None:
        st = sc.state()
        return st if all(j["state"] in TERMINAL or kept(j) for j in jobs_of(st, ids)) else None

    try:
        state = sc.wait("cancel: every job canceled, or kept when Meshy would not stop it",
                        settled, 60, every=0.2)
    except Fail as exc:
        state = sc.state()
        rep.check(False, "cancel: Esc ends every job of the batch", str(exc))
    jobs = jobs_of(state, ids)
    rep.check(all(j["state"] == "canceled" or kept(j) for j in jobs),
              "cancel: Esc cancels every job (a task Meshy would not stop is kept, unapplied)",
              f"in {time.monotonic() - esc_at:.1f} s: "
              + ", ".join(f"{j['object']}={j['state']} ({j['message']})" for j in jobs))
    wait_modal_end(sc, rep, "cancel")
    time.sleep(1.0)
    panel_crop(lay, shot("canceled.png"))
    # The emulator would have finished these jobs by now: nothing may be applied afterwards.
    rest = MESHY_JOB_SECONDS + 4 - (time.monotonic() - started)
    if rest > 0:
        time.sleep(rest)
    state = sc.state()
    jobs = jobs_of(state, ids)
    worn = {name: (o.get("material") or {}).get("name", "") for name, o in state["objects"].items()}
    rep.check(all(j["state"] == "canceled" or kept(j) for j in jobs) and worn == meshy_worn,
              "cancel: after the provider's job time nothing was applied",
              f"materials {worn}")
    with emu.lock:
        tasks = [task for task in emu.tasks.values() if task.created >= started_epoch - 1]
    asked = {r.path.rsplit("/", 1)[-1] for r in emu.recorded("DELETE")}
    rep.check(all(task.id in asked for task in tasks),
              "cancel: every task the batch had created at Meshy was asked to stop (DELETE)",
              f"{sum(task.id in asked for task in tasks)} of {len(tasks)} asked, "
              f"{sum(task.deleted for task in tasks)} deleted (Meshy keeps running ones)")
    rep.phase("canceled batch", t)

    # ---- the end ------------------------------------------------------------------------------
    if args.keep_open:
        step("--keep-open: Blender stays up; Ctrl-C to stop")
        try:
            blender.wait()
        except KeyboardInterrupt:
            pass
    else:
        sc.command("quit")
        try:
            blender.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rep.warn("Blender did not quit within 60 s; stopped")


def check_log(rep: Report) -> None:
    """Python tracebacks in Blender's output: any from the extension or the scenario fails."""
    log = OUT / "blender.log"
    if not log.exists():
        return
    lines = log.read_text(errors="replace").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if "Traceback (most recent call last)" in lines[i]:  # also "Error: Python: Traceback"
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j].strip()):
                j += 1
            blocks.append(lines[i:j + 1])
            i = j + 1
        else:
            i += 1
    ours = [b for b in blocks if any(
        "text_to_texture" in ln or "gui_scenario" in ln for ln in b)]
    rep.check(not ours, "no Python traceback from the extension in Blender's log",
              f"{len(ours)} found; the first:\n" + "\n".join(ours[0]) if ours else "")
    if len(blocks) > len(ours):
        rep.warn(f"{len(blocks) - len(ours)} other traceback(s) in {log}")
    reports = [ln for ln in lines if re.match(r"^(Info|Warning|Error): ", ln)]
    if reports:
        rep.note("operator reports in Blender's log:")
        for ln in reports:
            rep.note(f"  {ln}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-open", action="store_true",
                        help="leave Blender running at the end (until Ctrl-C)")
    parser.add_argument("--invoke-from-script", action="store_true",
                        help="start batches with bpy.ops (INVOKE_DEFAULT) instead of clicking "
                        "the panel's button")
    args = parser.parse_args()
    if not RB.exists():
        print(f"FAIL: {RB} not found (the checkout must sit next to shared/)")
        return 1

    rep = Report()
    LOCK.touch(exist_ok=True)
    with open(LOCK) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            step("another test-gui run holds the virtual screen; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        stale_own_blender()
        others = chroot_guis()
        if others:
            step(f"waiting for other Blender windows on the virtual screen to close: {others}")
            deadline = time.monotonic() + 300
            while (others := chroot_guis()) and time.monotonic() < deadline:
                time.sleep(2)
            if others:
                print(f"FAIL: Blender {others} (not started by this run) still uses the virtual "
                      "screen :99; stop it and run again")
                return 1
        shutil.rmtree(OUT, ignore_errors=True)
        OUT.mkdir(parents=True)
        try:
            run(args, rep)
        except Fail as exc:
            rep.check(False, "the scenario ran to the end", str(exc))
        except subprocess.CalledProcessError as exc:
            rep.check(False, "the scenario ran to the end",
                      f"{exc.cmd} exited {exc.returncode}: "
                      f"{(exc.stderr or b'').decode(errors='replace')[-500:]}")
        check_log(rep)

    total = time.monotonic() - rep.t0
    print("\n==== test-gui summary ====")
    for name, seconds in rep.times:
        print(f"  {seconds:6.1f} s  {name}")
    print(f"  {total:6.1f} s  total")
    shots = sorted(p.name for p in OUT.glob("*.png") if not p.name.startswith("probe_"))
    print(f"  screenshots in {OUT.relative_to(ROOT)}/: {', '.join(shots)}")
    fails = [r for r in rep.rows if r[0] == "FAIL"]
    oks = [r for r in rep.rows if r[0] == "ok"]
    warns = [r for r in rep.rows if r[0] == "warn"]
    for _s, what, detail in fails:
        print(f"  FAIL  {what}" + (f"\n        {detail}" if detail else ""))
    print(f"  {len(oks)} passed, {len(fails)} failed, {len(warns)} warnings")
    print("PASS" if not fails else "FAIL")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
