"""Files a hostile server sends (issue 13, cases 5 and 6): maps that declare enormous sizes,
models that multiply by instancing, claim data they do not hold, or carry a huge description.

Everything is refused from headers and counts, before a pixel is decoded or an array made, with
one line the artist can read; what a job accepts follows what it asked for and what it sent.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulators.base import guard_loopback, map_png
from emulators.glb import cube_glb
from emulators.hostile import (
    HostileServer,
    fat_json_glb,
    instanced_glb,
    png_answer,
    png_declaring,
    unbacked_glb,
)
from runner_driving import fast_runner, settle
from text_to_texture.formats import glb_maps, imagefile, limits, meshfile
from text_to_texture.formats.limits import Limits
from text_to_texture.jobs.job import Job, State, new_job_id
from text_to_texture.jobs.journal import Journal
from text_to_texture.net.http import NO_RETRY, HttpClient, HttpError, bearer
from text_to_texture.providers.base import (
    BASE_COLOR,
    RESULT_MESH,
    CancelToken,
    Provider,
    RemoteState,
    RemoteStatus,
    TextureRequest,
)

MB = 1 << 20


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


@pytest.fixture()
def server() -> Iterator[HostileServer]:
    with HostileServer() as srv:
        yield srv


# --------------------------------------------------------------------------- case 5: maps


def test_the_limits_follow_the_jobs_resolution() -> None:
    assert Limits.for_job(1024).map_side == 4096  # Meshy answers 1024 with its 2k tier
    assert Limits.for_job(2048).map_side == 4096
    assert Limits.for_job(4096).map_side == 8192
    assert Limits.for_job(1024).map_problem(4096, 4096) == ""
    assert Limits.for_job(4096).map_problem(12000, 12000) == (
        "is 12000×12000 pixels, larger than the 8192×8192 this job accepts; it was not loaded")


@pytest.mark.parametrize("side", [12000, 16000])
def test_a_map_declaring_a_huge_size_is_refused_from_its_header(
    server: HostileServer, tmp_path: Path, side: int
) -> None:
    server.routes["/m.png"] = png_answer(png_declaring(side, side))
    client = HttpClient(server.url, bearer("k" * 20), "Meshy", retry=NO_RETRY)
    tracemalloc.start()
    try:
        with limits.use(Limits.for_job(1024)), pytest.raises(HttpError) as err:
            client.download(f"{server.url}/m.png", str(tmp_path / "m.png"), 64 * MB,
                            what="base color map")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.message == (f"The base color map from Meshy is {side}×{side} pixels, "
                                 "larger than the 4096×4096 this job accepts; it was not loaded")
    assert peak < 4 * MB and not list(tmp_path.iterdir())


def test_no_decoder_allocates_what_a_header_declares(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="16000×16000 pixels"):
        imagefile.decode_png(png_declaring(16000, 16000))
    assert imagefile.decode_png(map_png("roughness", 64)).shape == (64, 64, 3)


class _OneMap(Provider):
    """A provider whose service sends one map, written as it came."""

    id = "ONEMAP"
    label = "Acme"
    poll_interval = 0.01
    data = b""

    def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
        return "r1"

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        return RemoteStatus(RemoteState.SUCCEEDED, 1.0)

    def fetch(self, remote_id: str, status: RemoteStatus, request: TextureRequest,
              cancel: CancelToken, progress: Any) -> dict[str, str]:
        path = Path(request.out_dir) / f"{request.file_stem}_base_color.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.data)
        out = {BASE_COLOR: str(path)}
        if self.mesh:
            glb = Path(request.out_dir) / f"{request.file_stem}_result.glb"
            glb.write_bytes(self.mesh)
            out[RESULT_MESH] = str(glb)
        return out

    mesh = b""


def _job(tmp_path: Path, resolution: int = 1024) -> Job:
    jid = new_job_id()
    req = TextureRequest(job_id=jid, prompt="oak", resolution=resolution,
                         out_dir=str(tmp_path / "maps"), file_stem="Cube", mesh_format="GLB",
                         mesh_path=str(tmp_path / f"{jid}.glb"))
    return Job(id=jid, provider="ONEMAP", object_name="Cube", request=req)


def test_any_providers_map_is_checked_before_anything_decodes_it(tmp_path: Path) -> None:
    """Whatever a provider writes (a future one too), the runner checks each map's header
    against the job before the main thread (or a re-encode) ever decodes it."""
    provider = _OneMap()
    provider.data = png_declaring(16000, 16000)
    runner = fast_runner(Journal(tmp_path / "journal"))
    job = _job(tmp_path, resolution=2048)
    runner.start(job, provider)
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.FAILED
    assert done.message == ("Acme's base color map is 16000×16000 pixels, larger than the "
                            "4096×4096 this job accepts; it was not loaded")


def test_a_textured_models_huge_texture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.glb"
    glb = bytearray(fat_json_glb(2000))
    start = bytes(glb).index(b"\x89PNG")  # make the embedded map declare 12000²
    glb[start:start + 33] = png_declaring(12000, 12000)[:33]
    path.write_bytes(bytes(glb))
    with limits.use(Limits.for_job(1024)), pytest.raises(glb_maps.GlbError) as err:
        glb_maps.extract_maps(str(path), str(tmp_path / "out"), "Cube")
    assert str(err.value) == ("the model's base color texture is 12000×12000 pixels, larger "
                              "than the 4096×4096 this job accepts; it was not loaded")


# --------------------------------------------------------------------------- case 6: models


def test_node_instancing_cannot_turn_half_a_megabyte_into_millions_of_triangles(
    tmp_path: Path,
) -> None:
    path = tmp_path / "result.glb"
    path.write_bytes(instanced_glb(20_000, 100))  # 0.37 MB, 2,000,000 triangles
    tracemalloc.start()
    try:
        with limits.use(Limits.for_job(1024, sent_triangles=12)), \
                pytest.raises(meshfile.MeshFileError) as err:
            meshfile.read_glb(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value) == ("result.glb: the mesh has 2,000,000 triangles, far more than the "
                              "12 sent (at most 200,000 are accepted); it was not loaded")
    assert peak < 4 * MB


def test_instanced_meshes_within_the_limit_still_read(tmp_path: Path) -> None:
    path = tmp_path / "result.glb"
    path.write_bytes(instanced_glb(200, 10))
    with limits.use(Limits.for_job(1024, sent_triangles=1000)):
        mesh = meshfile.read_glb(path)
    assert len(mesh.corner_verts) // 3 == 2000


def test_an_accessor_without_data_cannot_declare_millions_of_vertices(tmp_path: Path) -> None:
    path = tmp_path / "result.glb"
    path.write_bytes(unbacked_glb(1 << 24))
    with pytest.raises(meshfile.MeshFileError) as err:
        meshfile.read_glb(path)
    assert "16,777,216 vertices" in str(err.value) and "\n" not in str(err.value)


def test_a_huge_gltf_description_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "model.glb"
    path.write_bytes(fat_json_glb(20 * MB + 4096))
    tracemalloc.start()
    try:
        with pytest.raises(glb_maps.GlbError) as err:
            glb_maps.extract_maps(str(path), str(tmp_path / "out"), "Cube")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value) == ("the model's description is 20 MB, more than the 16 MB a "
                              "textured model needs")
    assert peak < 4 * MB
    with pytest.raises(meshfile.MeshFileError, match="over the 16 MB limit"):
        meshfile.read_glb(path)


def test_a_result_mesh_far_larger_than_the_object_sent_fails_the_job(tmp_path: Path) -> None:
    provider = _OneMap()
    provider.data = map_png("base_color")
    provider.mesh = instanced_glb(2000, 200)  # 400,000 triangles for a 12-triangle cube
    runner = fast_runner(Journal(tmp_path / "journal"))
    job = _job(tmp_path)
    cube = meshfile.read_glb(_write(tmp_path / "cube.glb", cube_glb()))
    runner.start(job, provider, cube)
    done = settle(runner, [job.id])[job.id]
    assert done.state is State.FAILED
    assert done.message == (
        "Acme's mesh could not be read: Cube_result.glb: the mesh has 400,000 triangles, far "
        "more than the 12 sent (at most 200,000 are accepted); it was not loaded")
    assert Path(done.maps[BASE_COLOR]).is_file()  # the paid maps are kept


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_sent_mesh_sets_the_result_limit(tmp_path: Path) -> None:
    big = Limits.for_job(1024, sent_triangles=1_500_000)
    assert big.triangles == 4_000_000  # never past the ceiling
    assert Limits.for_job(1024, sent_triangles=100_000).triangles == 400_000
    assert Limits.for_job(1024).triangles == 4_000_000  # a mesh URL: nothing known was sent
