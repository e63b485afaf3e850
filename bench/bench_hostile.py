"""Hostile servers and clients (issue 13): each case's peak memory and outcome, for this code
and, with `--before DIR`, for another checkout (the code before the hardening) side by side.

Each case runs in a child process that imports the package from the checkout being measured
(`--code`), and its hostile peer (a raw-socket server from tests/emulators/hostile.py, or an
attacking client) in a process of its own, so only the measured side's memory counts. Peak
memory is the rise of the child's peak RSS over its level just before the case (C allocations
included: Blender decoding a map), and the peak of Python's own allocations (tracemalloc).
Cases that never end on their own are cut after `--cap` seconds and said so.

    .venv/bin/python bench/bench_hostile.py                                  # this checkout
    .venv/bin/python bench/bench_hostile.py --before /tmp/house-before       # before | after
    .venv/bin/python bench/bench_hostile.py --cases esc-status,esc-download  # some cases
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20
TASK = "hostile-task"
RETEXTURE = "/openapi/v1/retexture"
RETEXTURE_V2 = "/openapi/v2/retexture"
TASKS_V2 = "/openapi/v2/tasks"

CASES: dict[str, str] = {
    "chunked-negative": "1  DRESSX server: chunk size -1, then 300 MB",
    "slow-flood": "2  DRESSX server: 32 slow clients, then a real webhook",
    "link-home": "3  a result link to another port of this computer (public API)",
    "huge-status": "4  a 1.2 GB status answer",
    "gzip-bomb": "4  a 0.6 MB gzip answer expanding to 600 MB",
    "triverse-download": "4  Triverse's direct download of a 600 MB model",
    "map-12000": "5  a map declaring 12000² (download + Blender's first decode)",
    "map-16000": "5  a map declaring 16000² (download + Blender's first decode)",
    "glb-instanced": "6  0.4 MB GLB instanced into 2 M triangles (12 sent)",
    "glb-unbacked": "6  an accessor without data declaring 2²⁴ vertices",
    "glb-json": "6  a textured GLB with 60 MB of glTF JSON",
    "meshy-message": "7  Meshy failure message of 1 MB",
    "status-number": "8  a status that is a number, for ever",
    "progress-nan": "8  progress NaN while running",
    "esc-status": "9  Esc while a status answer trickles (1 byte / 2 s)",
    "esc-download": "9  Esc while a map download trickles (1 byte / 2 s)",
}


# --------------------------------------------------------------------------- the hostile peer


def _emulators() -> None:
    sys.path.insert(0, str(ROOT / "tests"))


def serve(case: str) -> None:
    """Run the hostile server for `case`; print its URL; serve until stdin closes."""
    _emulators()
    from emulators import hostile as h
    from emulators.base import map_png

    # Meshy's routes in API v2 (this code) and v1 (the older checkout the "before" column runs).
    routes: dict[str, Any] = {
        f"{RETEXTURE}$": h.json_answer({"result": TASK}),
        f"{RETEXTURE_V2}$": h.json_answer({"id": TASK, "status": "PENDING", "progress": 0}),
        "/openapi/v[12]/balance": h.json_answer({"message": "no"}, 404),
    }
    status = f"(?:{RETEXTURE}|{TASKS_V2})/{TASK}$"
    slow = b'{"status": "IN_PROGRESS", "progress": 10}' + b" " * 400
    if case == "link-home":
        routes["/private"] = h.png_answer(map_png("base_color", 512))
    elif case == "huge-status":
        routes[status] = h.huge_json(1200 * MB)
    elif case == "gzip-bomb":
        routes[status] = h.gzip_bomb(600 * MB)
    elif case == "triverse-download":
        routes["/tasks/download/"] = _big_glb(600 * MB)
    elif case in ("map-12000", "map-16000"):
        side = int(case.split("-")[1])
        routes["/map.png"] = h.png_answer(h.png_declaring(side, side, complete=True))
    elif case == "meshy-message":
        text = "\x1b[31mGPU exploded\n" + "A" * MB
        routes[status] = h.json_answer({"status": "FAILED", "task_error": {"message": text}})
    elif case == "status-number":
        routes[status] = h.json_answer({"status": 5, "progress": 30})
    elif case == "progress-nan":
        routes[status] = _raw(b'{"status": "IN_PROGRESS", "progress": NaN}')
    elif case == "esc-status":
        routes[status] = h.trickle(slow, 2.0)
    elif case == "esc-download":
        srv_url: list[str] = []
        routes[status] = lambda c: h.json_answer({
            "status": "SUCCEEDED", "progress": 100,
            "texture_urls": [{"base_color": f"{srv_url[0]}/map.png"}]})(c)
        routes["/map.png"] = h.trickle(map_png("base_color", 256), 2.0, "image/png")
    srv = h.HostileServer(routes).start()
    if case == "esc-download":
        srv_url.append(srv.url)
    print(srv.url, flush=True)
    sys.stdin.read()
    srv.stop()


def _raw(body: bytes) -> Callable[[socket.socket], None]:
    def run(conn: socket.socket) -> None:
        from emulators.hostile import head

        conn.sendall(head(200, {"Content-Type": "application/json",
                                "Content-Length": str(len(body)), "Connection": "close"}) + body)

    return run


def _big_glb(size: int) -> Callable[[socket.socket], None]:
    def run(conn: socket.socket) -> None:
        from emulators.hostile import head

        conn.sendall(head(200, {"Content-Type": "model/gltf-binary",
                                "Content-Length": str(size), "Connection": "close"}))
        conn.sendall(b"glTF" + (2).to_bytes(4, "little") + size.to_bytes(4, "little"))
        block = b"\x00" * MB
        left = size - 12
        while left > 0:
            conn.sendall(block[:left])
            left -= len(block)

    return run


def attack(case: str, url: str, token: str) -> None:
    """The hostile client of the local-server cases."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    if case == "chunked-negative":
        import select

        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.sendall(f"POST /w/{token} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     f"\r\n-1\r\n".encode())
        answer = b""
        sent = 0
        block = b"x" * MB
        try:
            while sent < 300 * MB:
                if select.select([sock], [], [], 0)[0]:
                    answer = sock.recv(100) or b"(closed by the server)"
                    break
                sock.sendall(block)
                sent += len(block)
            answer = answer or sock.recv(100)  # all sent: whatever comes now
        except OSError:
            answer = answer or b"(connection reset by the server)"
        print(json.dumps({"answer": answer.split(b"\r\n")[0].decode("latin-1"),
                          "sent_mb": sent // MB}), flush=True)
    elif case == "slow-flood":
        socks = []
        for _ in range(32):
            s = socket.create_connection((host, int(port)), timeout=30)
            s.sendall(b"P")
            socks.append(s)
        print(json.dumps({"open": len(socks)}), flush=True)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            time.sleep(10)
            for s in socks:
                try:
                    s.sendall(b"O")
                except OSError:
                    pass


class Peer:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.first = self.proc.stdout.readline().strip()

    def stop(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- the measured child


class Meter:
    """Peak RSS rise and tracemalloc peak over a block."""

    def __enter__(self) -> Meter:
        self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.py_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        self.rss_rise = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.base)


def child(case: str, code: str, cap: float) -> None:
    sys.path.insert(0, str(Path(code) / "tools"))
    import ext_dev

    ext_dev.use_source_package()
    _emulators()
    work = Path(tempfile.mkdtemp(prefix="t2t-bench-hostile-"))
    out: dict[str, Any] = {"case": case}
    fn = globals()[f"_case_{case.replace('-', '_')}"]
    try:
        fn(out, work, cap)
    except Exception as exc:  # the outcome of the case, in one line
        out.setdefault("outcome", f"{type(exc).__name__}: {str(exc)[:160]}")
    print("RESULT " + json.dumps(out), flush=True)
    os._exit(0)  # threads blocked on hostile sockets must not keep the child alive


def _line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "…"


def _limits(resolution: int = 1024, sent: int = 0) -> Any:
    """The job's limits where this code has them (as the runner sets them for a job)."""
    import contextlib

    try:
        from text_to_texture.formats import limits
    except ImportError:
        return contextlib.nullcontext()
    return limits.use(limits.Limits.for_job(resolution, sent))


def _client(url: str, base: str | None = None) -> Any:
    from text_to_texture.net.http import NO_RETRY, HttpClient, bearer

    return HttpClient(base or url, bearer("k" * 24), "Hostile", retry=NO_RETRY)


def _measure(out: dict[str, Any], run: Callable[[], str]) -> None:
    with Meter() as m:
        try:
            out["outcome"] = run()
        except BaseException as exc:
            out["outcome"] = "refused: " + _line(exc)
    out["rss_mb"] = round(m.rss_rise / 1024, 1)
    out["py_mb"] = round(m.py_peak / MB, 1)


def _local_server(out: dict[str, Any], case: str) -> None:
    from text_to_texture.net.local_server import LocalServer

    srv = LocalServer().start()
    reg = srv.register(7)
    with Meter() as m:
        peer = Peer("--attack", case, srv.url, reg.webhook_token)
        if case == "chunked-negative":
            peer.proc.wait(120)
            answer = json.loads(peer.first or "{}")
            out["outcome"] = (f"answered {answer.get('answer') or 'nothing'} after "
                              f"{answer.get('sent_mb')} MB sent")
        else:
            import requests

            time.sleep(1.0)
            began = time.monotonic()
            try:
                resp = requests.post(f"{srv.url}/w/{reg.webhook_token}", timeout=20,
                                     data=json.dumps({"status": "success"}).encode())
                out["outcome"] = (f"real webhook: HTTP {resp.status_code} in "
                                  f"{time.monotonic() - began:.2f} s")
            except Exception as exc:
                out["outcome"] = f"real webhook refused ({type(exc).__name__})"
            peer.proc.kill()
    out["rss_mb"] = round(m.rss_rise / 1024, 1)
    out["py_mb"] = round(m.py_peak / MB, 1)


def _case_chunked_negative(out: dict[str, Any], work: Path, cap: float) -> None:
    _local_server(out, "chunked-negative")


def _case_slow_flood(out: dict[str, Any], work: Path, cap: float) -> None:
    _local_server(out, "slow-flood")


def _served(case: str) -> Peer:
    return Peer("--serve", case)


def _case_link_home(out: dict[str, Any], work: Path, cap: float) -> None:
    peer = _served("link-home")
    client = _client(peer.first, "https://api.example.com")
    link = peer.first + "/private"

    def run() -> str:
        got = client.download(link, str(work / "m.png"), 64 * MB)
        return f"fetched {got.size} bytes from {link}"

    _measure(out, run)
    peer.stop()


def _case_huge_status(out: dict[str, Any], work: Path, cap: float) -> None:
    peer = _served("huge-status")
    client = _client(peer.first)
    path = f"{RETEXTURE}/{TASK}"
    _measure(out, lambda: f"read whole ({len(json.dumps(client.get_json(path))) // MB} MB)")
    peer.stop()


def _case_gzip_bomb(out: dict[str, Any], work: Path, cap: float) -> None:
    peer = _served("gzip-bomb")
    client = _client(peer.first)
    path = f"{RETEXTURE}/{TASK}"
    _measure(out, lambda: f"expanded whole ({len(str(client.get_json(path))) // MB} MB)")
    peer.stop()


def _case_triverse_download(out: dict[str, Any], work: Path, cap: float) -> None:
    from text_to_texture.net.errors import CancelToken
    from text_to_texture.net.http import NO_RETRY
    from text_to_texture.providers.base import ProviderConfig
    from text_to_texture.providers.triverse import TriverseProvider

    peer = _served("triverse-download")
    provider = TriverseProvider(ProviderConfig(api_key="k" * 24, api_base=peer.first),
                                retry=NO_RETRY)

    def run() -> str:
        dest = str(work / "model.glb")
        try:  # this code: a function of the provider's results module
            from text_to_texture.providers.triverse.results import download_direct
        except ImportError:  # the older checkout: a method
            path = provider._download_direct(TASK, dest, CancelToken())
        else:
            path = download_direct(provider.client(), TASK, dest, provider.max_glb_bytes,
                                   CancelToken())
        return f"saved {os.path.getsize(path) // MB} MB"

    _measure(out, run)
    peer.stop()


def _map(out: dict[str, Any], work: Path, case: str) -> None:
    peer = _served(case)
    client = _client(peer.first)

    import bpy  # imported before measuring: its own memory is not the case's

    def run() -> str:
        with _limits(1024):
            got = client.download(f"{peer.first}/map.png", str(work / "map.png"), 512 * MB,
                                  what="base color map")
        image = bpy.data.images.load(got.path)  # what Blender does at the map's first draw
        size = tuple(image.size)  # decodes it
        return f"downloaded and decoded by Blender ({size[0]}×{size[1]})"

    _measure(out, run)
    peer.stop()


def _case_map_12000(out: dict[str, Any], work: Path, cap: float) -> None:
    _map(out, work, "map-12000")


def _case_map_16000(out: dict[str, Any], work: Path, cap: float) -> None:
    _map(out, work, "map-16000")


def _glb(out: dict[str, Any], path: Path, read: Callable[[], Any]) -> None:
    def run() -> str:
        got = read()
        tris = len(got.corner_verts) // 3 if hasattr(got, "corner_verts") else 0
        return f"read ({tris:,} triangles)" if tris else "read"

    _measure(out, run)


def make(case: str, path: str) -> None:
    """Write the hostile model of `case` (in a process of its own: making a 60 MB description
    must not raise the measured process's peak)."""
    _emulators()
    from emulators import hostile as h

    data = {"glb-instanced": lambda: h.instanced_glb(20_000, 100),
            "glb-unbacked": lambda: h.unbacked_glb(1 << 24),
            "glb-json": lambda: h.fat_json_glb(60 * MB)}[case]()
    Path(path).write_bytes(data)


def _made(case: str, path: Path) -> Path:
    subprocess.run([sys.executable, __file__, "--make", case, str(path)], check=True)
    return path


def _case_glb_instanced(out: dict[str, Any], work: Path, cap: float) -> None:
    from text_to_texture.formats import meshfile

    path = _made("glb-instanced", work / "result.glb")
    out["file_mb"] = round(path.stat().st_size / MB, 2)

    def read() -> Any:
        with _limits(1024, sent=12):
            return meshfile.read_glb(path)

    _glb(out, path, read)


def _case_glb_unbacked(out: dict[str, Any], work: Path, cap: float) -> None:
    from text_to_texture.formats import meshfile

    path = _made("glb-unbacked", work / "result.glb")
    _glb(out, path, lambda: meshfile.read_glb(path))


def _case_glb_json(out: dict[str, Any], work: Path, cap: float) -> None:
    from text_to_texture.formats import glb_maps

    path = _made("glb-json", work / "model.glb")
    _glb(out, path, lambda: glb_maps.extract_maps(str(path), str(work / "maps"), "Cube"))


def _meshy_job(case: str, work: Path, poll: float = 0.2) -> tuple[Any, Any, Any, Peer]:
    from emulators.glb import cube_glb
    from text_to_texture.jobs.job import Job, new_job_id
    from text_to_texture.jobs.journal import Journal
    from text_to_texture.jobs.runner import Runner
    from text_to_texture.net.http import RetryPolicy
    from text_to_texture.providers.base import ProviderConfig, TextureRequest
    from text_to_texture.providers.meshy import MeshyProvider

    peer = _served(case)
    jid = new_job_id()
    mesh = work / "cube.glb"
    mesh.write_bytes(cube_glb())
    req = TextureRequest(job_id=jid, prompt="oak", mesh_path=str(mesh), mesh_format="GLB",
                         out_dir=str(work / "maps"), file_stem="Cube")
    job = Job(id=jid, provider="MESHY", object_name="Cube", request=req)
    provider = MeshyProvider(ProviderConfig(api_key="k" * 24, api_base=peer.first),
                             poll_interval=poll, retry=RetryPolicy(retries=1, base=0.05))
    journal = Journal(work / "journal")
    runner = Runner(journal)
    runner.poll_retry_base = 0.05
    runner.start(job, provider)
    return runner, job, journal, peer


def _watch(runner: Any, until: Callable[[Any], bool], cap: float) -> list[Any]:
    seen: list[Any] = []
    end = time.monotonic() + cap
    while time.monotonic() < end:
        seen += runner.drain()
        if seen and until(seen[-1]):
            break
        time.sleep(0.01)
    return seen


def _case_meshy_message(out: dict[str, Any], work: Path, cap: float) -> None:
    with Meter() as m:
        runner, job, journal, peer = _meshy_job("meshy-message", work)
        seen = _watch(runner, lambda s: s.state.terminal, cap)
    last = seen[-1] if seen else None
    entry = journal.root / f"{job.id}.json"
    out["outcome"] = (f"job message {len(last.message):,} characters; journal entry "
                      f"{entry.stat().st_size:,} bytes") if last else "no answer"
    out["rss_mb"], out["py_mb"] = round(m.rss_rise / 1024, 1), round(m.py_peak / MB, 1)
    peer.stop()


def _case_status_number(out: dict[str, Any], work: Path, cap: float) -> None:
    began = time.monotonic()
    runner, _job, _journal, peer = _meshy_job("status-number", work)
    seen = _watch(runner, lambda s: s.state.terminal, cap)
    last = seen[-1] if seen else None
    took = time.monotonic() - began
    out["outcome"] = (f"{last.state.value} after {took:.1f} s: {last.message}"[:200]
                      if last and last.state.terminal else
                      f"still '{last.message if last else '?'}' after {cap:.0f} s")
    peer.stop()


def _case_progress_nan(out: dict[str, Any], work: Path, cap: float) -> None:
    runner, job, _journal, peer = _meshy_job("progress-nan", work)
    seen = _watch(runner, lambda s: False, 3.0)
    shown = sorted({round(s.progress * 100) for s in seen if s.state.value == "running"})
    out["outcome"] = f"progress shown while running: {shown} %"
    runner.cancel(job.id)
    peer.stop()


def _esc(out: dict[str, Any], work: Path, cap: float, case: str, when: str) -> None:
    runner, job, _journal, peer = _meshy_job(case, work, poll=0.1)
    _watch(runner, lambda s: s.state.value == when, 15.0)
    time.sleep(1.5)  # the answer is trickling now
    pressed = time.monotonic()
    runner.cancel(job.id)
    seen = _watch(runner, lambda s: s.state.value == "canceled", cap)
    took = time.monotonic() - pressed
    out["outcome"] = (f"Esc → canceled in {took:.2f} s"
                      if seen and seen[-1].state.value == "canceled"
                      else f"not canceled {cap:.0f} s after Esc")
    out["esc_s"] = round(took, 2) if seen and seen[-1].state.value == "canceled" else None
    peer.stop()


def _case_esc_status(out: dict[str, Any], work: Path, cap: float) -> None:
    _esc(out, work, cap, "esc-status", "running")


def _case_esc_download(out: dict[str, Any], work: Path, cap: float) -> None:
    _esc(out, work, cap, "esc-download", "downloading")


# --------------------------------------------------------------------------- the parent


def run_case(case: str, code: str, cap: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", case, "--code", code, "--cap", str(cap)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cap + 120)
    except subprocess.TimeoutExpired:
        return {"case": case, "outcome": "the child process did not end"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
    return {"case": case, "outcome": f"crashed: {tail[0][:160]}"}


def _mem(r: dict[str, Any]) -> str:
    if "rss_mb" not in r:
        return "—"
    return f"{r['rss_mb']:,.0f} MB ({r['py_mb']:,.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", help="a checkout of the code before, measured side by side")
    ap.add_argument("--code", default=str(ROOT))
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--cap", type=float, default=30.0, help="seconds before a case is cut")
    ap.add_argument("--child")
    ap.add_argument("--serve")
    ap.add_argument("--attack", nargs=3)
    ap.add_argument("--make", nargs=2)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.attack:
        attack(*args.attack)
        return
    if args.make:
        make(*args.make)
        return
    if args.child:
        child(args.child, args.code, args.cap)
        return
    rows = []
    print("| # | case | peak memory before (Python) | after (Python) | before | after |")
    print("|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        before = run_case(case, args.before, args.cap) if args.before else {}
        after = run_case(case, args.code, args.cap)
        rows.append({"case": case, "before": before, "after": after})
        number, _, what = CASES[case].partition("  ")
        print(f"| {number} | {what} | {_mem(before) if before else ''} | {_mem(after)} | "
              f"{before.get('outcome', '') if before else ''} | {after.get('outcome', '')} |",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    threading.stack_size(1 << 20)
    main()
