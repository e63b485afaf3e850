"""Baking without Blender: the reprojection's parts, a whole bake checked by content, and the
runner's BAKING step (handover, cancel, resume, fallback)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emulators import surface
from runner_driving import fast_runner, settle
from text_to_texture.formats import imagefile, meshfile
from text_to_texture.formats.bake import (
    BakeError,
    BakeTarget,
    bake,
    load_target,
    save_target,
)
from text_to_texture.formats.bake.closest import Surface
from text_to_texture.formats.bake.fill import nearest_covered
from text_to_texture.formats.bake.raster import rasterize
from text_to_texture.formats.bake.sample import carry_detail, to_tangent, to_world
from text_to_texture.formats.bake.tangents import corner_tangents
from text_to_texture.jobs.bake_step import USE_PROVIDER_MESH
from text_to_texture.jobs.job import Job, State, new_job_id
from text_to_texture.jobs.journal import Journal
from text_to_texture.providers.base import (
    RESULT_MESH,
    CancelToken,
    Provider,
    RemoteState,
    RemoteStatus,
    TextureRequest,
)


def uv_sphere(segments: int = 24, rings: int = 12) -> BakeTarget:
    """A UV sphere as Blender makes it: lat-long UVs with a seam, smooth normals."""
    th = np.linspace(0, np.pi, rings + 1)
    ph = np.linspace(0, 2 * np.pi, segments + 1)
    t, p = np.meshgrid(th, ph, indexing="ij")
    pos = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    uv = np.stack([p / (2 * np.pi), 1 - t / np.pi], -1).reshape(-1, 2)
    tris = []
    for r in range(rings):
        for s in range(segments):
            a, b = r * (segments + 1) + s, (r + 1) * (segments + 1) + s
            if r > 0:
                tris.append((a, b, a + 1))
            if r < rings - 1:
                tris.append((b, b + 1, a + 1))
    cv = np.array(tris).reshape(-1)
    return BakeTarget(pos.astype(np.float32), cv.astype(np.int32), pos[cv].astype(np.float32),
                      uv[cv].astype(np.float32), np.eye(4))


def provider_result(target: BakeTarget, folder: Path, decimated: float | None = None,
                    matrix: np.ndarray | None = None) -> tuple[Path, dict[str, str],
                                                              surface.Result]:
    """What the emulated service returns for `target` (uploaded in world space): its GLB
    and its maps as files."""
    world = target.positions @ (np.eye(4) if matrix is None else matrix)[:3, :3].T
    upload = folder / "upload.glb"
    meshfile.write_glb(meshfile.MeshArrays(world.astype(np.float32), target.corner_verts,
                                           target.normals, target.uvs), upload)
    res = surface.result(upload.read_bytes(), size=512, decimated=decimated)
    glb = folder / "result.glb"
    glb.write_bytes(surface.result_glb(res))
    maps = {}
    for role in ("base_color", "normal", "metallic_roughness"):
        path = folder / f"p_{role}.png"
        path.write_bytes(res.maps[role])
        maps[role] = str(path)
    return glb, maps, res


def positions_back(baked: str, target: BakeTarget, res: surface.Result) -> np.ndarray:
    """Per covered texel of the target, the baked position's error in units of its size."""
    image = imagefile.read_png(baked)
    size = image.shape[0]
    cov = rasterize(target.uvs.reshape(-1, 3, 2), size)
    tri = target.corner_verts.reshape(-1, 3)[cov.triangle]
    want = np.einsum("kj,kjc->kc", cov.bary, target.positions[tri])
    got_gl = surface.decode(image[::-1].reshape(-1, 3)[cov.texel] / 255.0, res.lo, res.hi)
    got = np.stack([got_gl[:, 0], -got_gl[:, 2], got_gl[:, 1]], 1)  # glTF -> Blender axes
    return np.abs(got - want).max(axis=1) / (res.hi - res.lo).max()


# --------------------------------------------------------------------------- the parts


def test_a_square_of_two_triangles_covers_every_texel_once_where_it_is() -> None:
    uvs = np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 1], [0, 1]]], np.float32)
    cov = rasterize(uvs, 16)
    assert sorted(cov.texel.tolist()) == list(range(256))
    corners = uvs[cov.triangle]
    centre = np.einsum("kj,kjc->kc", cov.bary, corners) * 16 - 0.5
    np.testing.assert_allclose(centre, np.stack([cov.texel % 16, cov.texel // 16], 1),
                               atol=1e-4)


def test_uvs_outside_the_square_wrap_like_a_repeating_texture() -> None:
    cov = rasterize(np.array([[[1, 0], [2, 0], [1, 1]]], np.float32), 8)
    inside = rasterize(np.array([[[0, 0], [1, 0], [0, 1]]], np.float32), 8)
    assert sorted(cov.texel.tolist()) == sorted(inside.texel.tolist())


def test_closest_points_are_those_of_a_search_over_every_triangle() -> None:
    rng = np.random.default_rng(3)
    sphere = uv_sphere(16, 8)
    pos = sphere.positions * (1 + 0.05 * rng.standard_normal((len(sphere.positions), 1)))
    tri = sphere.corner_verts.reshape(-1, 3)
    a, b, c = pos[tri[:, 0]], pos[tri[:, 1]], pos[tri[:, 2]]
    mesh = Surface(a, b, c)
    points = rng.standard_normal((400, 3))
    points = (points / np.linalg.norm(points, axis=1, keepdims=True)
              * rng.uniform(0.9, 1.1, (400, 1))).astype(np.float32)
    hits = mesh.closest(points, points, 0.01, 1.0)
    assert (hits.triangle >= 0).all()
    got = np.linalg.norm(np.einsum("kj,kjc->kc", hits.bary,
                                   np.stack([a, b, c], 1)[hits.triangle]) - points, axis=1)
    np.testing.assert_allclose(got, hits.distance, atol=1e-5)
    np.testing.assert_allclose(got, [_distance_to_mesh(p, a, b, c) for p in points],
                               atol=1e-5)


def _distance_to_mesh(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Every triangle: the plane if the projection falls inside, else the nearest edge."""
    p, a, b, c = (np.asarray(x, np.float64) for x in (p, a, b, c))
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    h = ((p - a) * n).sum(1)
    q = p - h[:, None] * n
    inside = np.ones(len(a), bool)
    for x, y in ((a, b), (b, c), (c, a)):
        inside &= (np.cross(y - x, q - x) * n).sum(1) >= 0

    def segment(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        t = np.clip(((p - x) * (y - x)).sum(1) / ((y - x) ** 2).sum(1), 0, 1)
        return np.linalg.norm(p - (x + t[:, None] * (y - x)), axis=1)

    edges = np.minimum(np.minimum(segment(a, b), segment(b, c)), segment(c, a))
    return float(np.where(inside, np.abs(h), edges).min())


def test_of_two_sides_of_a_thin_shell_the_one_facing_the_point_wins() -> None:
    quad = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    top, bottom = quad + np.array([0, 0, 0.001], np.float32), quad[[0, 2, 1]]  # up / down
    both = np.stack([bottom, top])
    mesh = Surface(both[:, 0], both[:, 1], both[:, 2])
    point = np.array([[0.2, 0.2, 0.0004]], np.float32)  # nearer the bottom sheet
    assert mesh.closest(point, np.array([[0, 0, 1]], np.float32), 0.01, 0.1).triangle[0] == 1
    assert mesh.closest(point, np.array([[0, 0, -1]], np.float32), 0.01, 0.1).triangle[0] == 0


def test_a_normal_goes_to_tangent_space_and_back_as_the_normal_map_node_reads_it() -> None:
    rng = np.random.default_rng(5)
    n = rng.standard_normal((500, 3)).astype(np.float32)
    t = rng.standard_normal((500, 3)).astype(np.float32)  # not orthogonal: as interpolated
    sign = np.where(rng.random(500) < 0.5, -1.0, 1.0).astype(np.float32)
    c = rng.standard_normal((500, 3)).astype(np.float32)
    c[:, 2] = np.abs(c[:, 2]) + 0.2
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    np.testing.assert_allclose(to_tangent(to_world(c, t, sign, n), t, sign, n), c, atol=1e-4)


def test_detail_is_carried_relative_to_the_surface() -> None:
    up = np.array([[0, 0, 1.0]], np.float32)
    tilted = np.array([[0, np.sin(0.3), np.cos(0.3)]], np.float32)
    np.testing.assert_allclose(carry_detail(up, up, tilted), tilted, atol=1e-6)  # flat: flat


def test_tangents_follow_u_and_mirrored_uvs_flip_the_sign() -> None:
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    n = np.tile([0, 0, 1.0], (3, 1)).astype(np.float32)
    tan, sign = corner_tangents(pos, np.arange(3), n, np.array([[0, 0], [1, 0], [0, 1]]))
    np.testing.assert_allclose(tan, [[1, 0, 0]] * 3, atol=1e-6)
    assert (sign == 1).all()
    tan, sign = corner_tangents(pos, np.arange(3), n, np.array([[1, 0], [0, 0], [1, 1]]))
    np.testing.assert_allclose(tan, [[-1, 0, 0]] * 3, atol=1e-6)  # u runs the other way
    assert (sign == -1).all()


def test_texels_outside_every_island_take_the_nearest_island() -> None:
    size = 32
    covered = np.array([y * size + x for y in range(size) for x in (2, 3, 28, 29)])
    source = nearest_covered(size, covered)
    columns = (source % size).reshape(size, size)
    assert (columns[:, :15] <= 3).all() and (columns[:, 17:] >= 28).all()
    assert (source >= 0).all()


# --------------------------------------------------------------------------- whole bakes


@pytest.mark.parametrize("decimated", [None, 0.3])
def test_a_bake_gives_back_each_texels_own_surface_point(tmp_path: Path,
                                                         decimated: float | None) -> None:
    target = uv_sphere(32, 16)  # Blender's default UV sphere: 960 triangles
    glb, maps, res = provider_result(target, tmp_path, decimated)
    seen: list[float] = []
    out = bake(target, meshfile.read_glb(glb), maps, 256, tmp_path, "ball",
               progress=lambda f, m: seen.append(f))
    assert set(out.maps) == {"base_color", "normal", "metallic_roughness"}
    assert seen == sorted(seen) and seen[-1] == 1.0
    err = positions_back(out.maps["base_color"], target, res)
    assert (err < 0.02).mean() >= 0.99, np.percentile(err, [50, 99])
    normal = imagefile.read_png(out.maps["normal"]).reshape(-1, 3)
    assert (np.abs(normal.astype(int) - surface.FLAT_NORMAL).max(axis=1) <= 2).all()
    packed = imagefile.read_png(out.maps["metallic_roughness"]).reshape(-1, 3)
    assert (packed[:, 1] == surface.ROUGHNESS_LEVEL).all()  # padding included: never black


def test_an_object_that_moved_is_baked_in_its_own_space(tmp_path: Path) -> None:
    target = uv_sphere()
    angle = 0.7
    matrix = np.eye(4)
    matrix[:3, :3] = 2.0 * np.array([[np.cos(angle), -np.sin(angle), 0],
                                     [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    matrix[:3, 3] = (5, -3, 1)
    target.matrix = matrix
    world = target.positions @ matrix[:3, :3].T + matrix[:3, 3]
    upload = tmp_path / "upload.glb"
    meshfile.write_glb(meshfile.MeshArrays(world.astype(np.float32), target.corner_verts,
                                           target.normals @ matrix[:3, :3].T, target.uvs),
                       upload)
    res = surface.result(upload.read_bytes(), size=512)
    glb = tmp_path / "result.glb"
    glb.write_bytes(surface.result_glb(res))
    (tmp_path / "b.png").write_bytes(res.maps["base_color"])
    out = bake(target, meshfile.read_glb(glb), {"base_color": str(tmp_path / "b.png")}, 256,
               tmp_path, "moved")
    assert out.matched > 0.99 and not out.refitted
    image = imagefile.read_png(out.maps["base_color"])
    cov = rasterize(target.uvs.reshape(-1, 3, 2), 256)
    tri = target.corner_verts.reshape(-1, 3)[cov.triangle]
    want = np.einsum("kj,kjc->kc", cov.bary, world[tri])
    got_gl = surface.decode(image[::-1].reshape(-1, 3)[cov.texel] / 255.0, res.lo, res.hi)
    got = np.stack([got_gl[:, 0], -got_gl[:, 2], got_gl[:, 1]], 1)
    err = np.abs(got - want).max(axis=1) / (res.hi - res.lo).max()
    assert (err < 0.02).mean() >= 0.99


def test_a_mesh_that_is_not_the_objects_surface_is_refused(tmp_path: Path) -> None:
    target = uv_sphere()
    glb, maps, _res = provider_result(target, tmp_path)
    source = meshfile.read_glb(glb)
    squashed = source.positions * np.array([1.0, 1.0, 0.05], np.float32)  # a disc
    source = meshfile.MeshArrays(squashed, source.corner_verts, None, source.uvs)
    with pytest.raises(BakeError, match="does not match the object's surface"):
        bake(target, source, maps, 64, tmp_path, "x")


def test_only_png_maps_can_be_baked(tmp_path: Path) -> None:
    target = uv_sphere()
    glb, _maps, _res = provider_result(target, tmp_path)
    jpeg = tmp_path / "x.jpg"  # a JPEG's header: start of image, then a 4×4 frame
    jpeg.write_bytes(b"\xff\xd8\xff\xc0\x00\x0b\x08\x00\x04\x00\x04\x01\x01\x11\x00")
    with pytest.raises(BakeError, match="base color map is JPEG; only PNG"):
        bake(target, meshfile.read_glb(glb), {"base_color": str(jpeg)}, 64, tmp_path, "x")


def test_a_bake_stops_when_canceled(tmp_path: Path) -> None:
    target = uv_sphere()
    glb, maps, _res = provider_result(target, tmp_path)

    class Stop(Exception):
        pass

    def check() -> None:
        raise Stop()

    with pytest.raises(Stop):
        bake(target, meshfile.read_glb(glb), maps, 128, tmp_path, "x", check=check)
    assert not list(tmp_path.glob("x_*_baked.png"))


def test_a_target_survives_a_file_round_trip(tmp_path: Path) -> None:
    target = uv_sphere()
    target.tangents, target.signs = corner_tangents(
        target.positions[target.corner_verts], target.corner_verts, target.normals, target.uvs)
    target.uv_name = "UVMap"
    back = load_target(save_target(target, tmp_path / "ball.bake.npz"))
    assert back.uv_name == "UVMap"
    for name in ("positions", "corner_verts", "normals", "uvs", "matrix", "tangents", "signs"):
        np.testing.assert_array_equal(getattr(back, name), getattr(target, name))


# --------------------------------------------------------------------------- the runner


class ResultProvider(Provider):
    """Finishes at once and returns a surface result: its maps and its own mesh."""

    id = "FAKE_MESH"
    label = "Meshy-like"
    poll_interval = 0.01
    folder: Path
    target: BakeTarget
    calls: list[str]

    def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
        self.calls.append("submit")
        return "r1"

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        self.calls.append("poll")
        return RemoteStatus(RemoteState.SUCCEEDED, 1.0)

    def fetch(self, remote_id, status, request, cancel, progress):  # type: ignore[no-untyped-def]
        self.calls.append("fetch")
        glb, maps, _res = provider_result(self.target, self.folder)
        return {**maps, RESULT_MESH: str(glb)}

    def cancel(self, remote_id: str) -> None:
        self.calls.append("cancel")


def runner_job(tmp_path: Path, **options: object) -> Job:
    job_id = new_job_id()
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    request = TextureRequest(job_id=job_id, prompt="p", resolution=128, out_dir=str(out),
                             file_stem="ball", options=dict(options))
    return Job(id=job_id, provider=ResultProvider.id, object_name="Ball", request=request)


def result_provider(tmp_path: Path) -> ResultProvider:
    provider = ResultProvider()
    provider.folder = tmp_path / "out"
    provider.target = uv_sphere(12, 6)
    provider.calls = []
    return provider


def test_a_result_on_its_own_uvs_is_baked_by_the_worker(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "journal"))
    runner, provider = fast_runner(journal), result_provider(tmp_path)
    job = runner_job(tmp_path)
    runner.start(job, provider)
    done = settle(runner, [job.id], 30, bake_target=provider.target)[job.id]
    assert done.state is State.READY, done.message
    assert RESULT_MESH not in done.maps and RESULT_MESH in done.extra["provider_maps"]
    assert all(p.endswith("_baked.png") and Path(p).is_file() for p in done.maps.values())
    assert journal.load(job.id).maps == done.maps


def test_with_use_the_providers_mesh_nothing_is_baked(tmp_path: Path) -> None:
    runner, provider = fast_runner(Journal(str(tmp_path / "j"))), result_provider(tmp_path)
    job = runner_job(tmp_path, **{USE_PROVIDER_MESH: True})
    runner.start(job, provider)
    done = settle(runner, [job.id], 30)[job.id]
    assert done.state is State.READY and RESULT_MESH in done.maps
    assert "baked" not in done.extra and "warning" not in done.extra


def test_without_an_object_the_result_keeps_its_mesh_and_says_why(tmp_path: Path) -> None:
    runner, provider = fast_runner(Journal(str(tmp_path / "j"))), result_provider(tmp_path)
    job = runner_job(tmp_path)
    runner.start(job, provider)
    done = settle(runner, [job.id], 30, bake_target=None)[job.id]
    assert done.state is State.READY and RESULT_MESH in done.maps
    assert done.extra["warning"] == (
        "Could not bake Meshy-like's maps onto 'Ball' (no object in this test): it gets "
        "Meshy-like's mesh instead; yours is kept in the file")


def _wait_for(runner, job_id: str, state: State) -> Job:  # type: ignore[no-untyped-def]
    end = time.monotonic() + 30
    while time.monotonic() < end:
        for snap in runner.drain():
            if snap.id == job_id and snap.state is state:
                return snap
        time.sleep(0.005)
    raise AssertionError(f"never {state.value}")


def test_cancel_while_baking_ends_the_job_here_only(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "journal"))
    runner, provider = fast_runner(journal), result_provider(tmp_path)
    job = runner_job(tmp_path)
    runner.start(job, provider)
    _wait_for(runner, job.id, State.BAKING)  # its worker waits for the object now
    assert journal.load(job.id).state is State.BAKING  # journaled before it waits
    runner.cancel(job.id)
    done = settle(runner, [job.id], 10)[job.id]
    assert done.state is State.CANCELED
    assert done.message.startswith("Canceled while baking; Meshy-like's maps are kept in")
    assert "cancel" not in provider.calls  # the provider's job was finished and paid for


def test_cancel_is_felt_in_the_middle_of_a_bake(tmp_path: Path) -> None:
    runner, provider = fast_runner(Journal(str(tmp_path / "j"))), result_provider(tmp_path)
    job = runner_job(tmp_path)
    job.request.resolution = 4096  # tens of seconds of work on this machine
    runner.start(job, provider)
    _wait_for(runner, job.id, State.BAKING)
    runner.provide_target(job.id, provider.target)
    end = time.monotonic() + 60
    while time.monotonic() < end:  # until it is sampling the maps
        snaps = [s for s in runner.drain() if s.id == job.id]
        if any(s.progress >= 0.15 for s in snaps):
            break
        time.sleep(0.01)
    asked = time.monotonic()
    runner.cancel(job.id)
    done = settle(runner, [job.id], 30)[job.id]
    assert done.state is State.CANCELED
    assert time.monotonic() - asked < 5.0  # a bake checks for cancel between small chunks
    assert not list((tmp_path / "out").glob("*_baked.png"))


def test_a_job_resumed_while_baking_bakes_again_without_the_provider(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path / "journal"))
    first, provider = fast_runner(journal), result_provider(tmp_path)
    job = runner_job(tmp_path)
    first.start(job, provider)
    _wait_for(first, job.id, State.BAKING)
    first.kill()  # Blender stops
    stored = journal.load(job.id)
    assert stored is not None and stored.state is State.BAKING
    calls = list(provider.calls)
    second = fast_runner(journal)
    second.resume(stored, provider)
    done = settle(second, [job.id], 30, bake_target=provider.target)[job.id]
    assert done.state is State.READY and "baked" in done.extra
    assert provider.calls == calls  # nothing asked of the provider again


def test_a_killed_runner_stops_a_worker_waiting_for_its_object(tmp_path: Path) -> None:
    runner, provider = fast_runner(Journal(str(tmp_path / "j"))), result_provider(tmp_path)
    job = runner_job(tmp_path)
    runner.start(job, provider)
    _wait_for(runner, job.id, State.BAKING)
    runner.kill()
    end = time.monotonic() + 5
    while runner.busy() and time.monotonic() < end:
        time.sleep(0.01)
    assert not runner.busy()
    assert not [t for t in threading.enumerate() if t.name.endswith(job.id)]
