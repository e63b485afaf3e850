"""The offline provider: maps an artist would accept, seamless, deterministic, from the words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from text_to_texture.formats.imagefile import read_png
from text_to_texture.providers.base import (
    MAP_ROLES,
    Canceled,
    CancelToken,
    ProviderError,
    RemoteState,
    TextureRequest,
)
from text_to_texture.providers.procedural import (
    ProceduralProvider,
    generate_maps,
    noise,
    parse_prompt,
)

RES = 128
_CACHE: dict[tuple[str, int, int, str], dict[str, np.ndarray]] = {}


def maps(prompt: str, seed: int = 1, res: int = RES, negative: str = "") -> dict[str, np.ndarray]:
    key = (prompt, seed, res, negative)
    if key not in _CACHE:
        _CACHE[key] = generate_maps(prompt, seed, res, negative)
    return _CACHE[key]


def luma(base: np.ndarray) -> np.ndarray:
    return base.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])


def decode_normals(normal: np.ndarray) -> np.ndarray:
    return normal.astype(np.float64) / 255.0 * 2.0 - 1.0


# --------------------------------------------------------------------------- contract


def test_maps_have_the_documented_shapes_and_types() -> None:
    out = maps("oak wood", res=64)
    assert set(out) == set(MAP_ROLES)
    assert out["base_color"].shape == (64, 64, 3) and out["base_color"].dtype == np.uint8
    assert out["normal"].shape == (64, 64, 3) and out["normal"].dtype == np.uint8
    for role in ("roughness", "metallic"):
        assert out[role].shape == (64, 64) and out[role].dtype == np.uint8
    assert out["height"].shape == (64, 64) and out["height"].dtype == np.uint16
    assert int(out["height"].max()) - int(out["height"].min()) > 30000  # uses the 16 bits


def test_same_seed_same_bytes_other_seed_other_maps() -> None:
    first = generate_maps("weathered red brick wall", 42, 96)
    again = generate_maps("weathered red brick wall", 42, 96)
    other = generate_maps("weathered red brick wall", 43, 96)
    for role in MAP_ROLES:
        assert first[role].tobytes() == again[role].tobytes(), role
    for role in ("base_color", "roughness", "normal", "height"):
        assert not np.array_equal(first[role], other[role]), role


@pytest.mark.parametrize("prompt", ["", "   ", "qwerty zxcvb", "!!!", "a 4k photo, 8k, trending"])
def test_empty_or_unknown_prompt_gives_a_neutral_surface(prompt: str) -> None:
    out = generate_maps(prompt, 3, 64)
    base = out["base_color"].reshape(-1, 3).astype(float)
    assert np.ptp(base.mean(axis=0)) < 20  # not strongly coloured
    assert 100 < luma(out["base_color"]).mean() < 240
    assert out["metallic"].max() == 0
    assert out["roughness"].mean() > 150


def test_unknown_words_and_punctuation_are_ignored() -> None:
    plain = maps("oak wood")
    noisy = maps("A photo of OAK-wood, 4k!! (highly detailed)")
    for role in MAP_ROLES:
        assert np.array_equal(plain[role], noisy[role]), role


def test_plurals_and_inflections_are_understood() -> None:
    assert parse_prompt("Tiles").layout == "tile"
    assert parse_prompt("old bricks").layout == "brick"
    assert parse_prompt("scratches and cracks").mods.keys() >= {"scratched", "cracked"}
    assert parse_prompt("rusted steel").mods.get("rusty") == 1.0
    assert parse_prompt("marble with black veins").attached["vein"] == pytest.approx(
        (0.035, 0.035, 0.035))


def test_rejects_impossible_resolution() -> None:
    for res in (0, 4, 100_000):
        with pytest.raises(ValueError, match="resolution"):
            generate_maps("wood", 1, res)


# --------------------------------------------------------------------------- seamless


def seam_ratio(arr: np.ndarray, axis: int) -> float:
    """How the wrap-around step compares with the ordinary neighbour steps (1 = like any)."""
    a = arr.astype(np.float64)
    if a.ndim == 3:
        a = a.mean(axis=2)
    if axis == 0:
        a = a.T
    steps = np.abs(np.diff(a, axis=1)).mean(axis=0)  # one value per neighbouring column pair
    wrap = np.abs(a[:, -1] - a[:, 0]).mean()
    return float(wrap / (steps.max() + 0.5))


TILE_PROMPTS = [
    "oak wood", "red brick", "white tiles with black grout", "wooden floor planks",
    "polished gold", "weathered bronze with green patina", "rusty iron", "white marble",
    "denim", "brown leather", "cobblestone", "sand", "green snake scales", "lava",
    "cracked mossy stone", "worn painted metal with scratches", "granite", "grass", "ice",
    "hammered copper",
]


@pytest.mark.parametrize("prompt", TILE_PROMPTS)
def test_every_map_tiles_without_a_seam(prompt: str) -> None:
    for role, arr in maps(prompt).items():
        for axis in (0, 1):
            assert seam_ratio(arr, axis) < 1.25, (role, axis)


def test_seam_check_would_catch_a_seam() -> None:
    for prompt in ("oak wood", "white marble", "sand", "polished gold"):
        cut = maps(prompt)["base_color"][:, 7:-23]  # no longer one period wide
        assert seam_ratio(cut, 1) > 1.4, prompt


def test_tileable_at_odd_resolution() -> None:
    out = generate_maps("brick wall with moss", 5, 100)
    for role, arr in out.items():
        assert seam_ratio(arr, 0) < 1.25 and seam_ratio(arr, 1) < 1.25, role


def test_resolution_changes_detail_not_the_material() -> None:
    small, large = maps("red brick", res=256), maps("red brick", res=512)
    shrunk = large["base_color"].reshape(256, 2, 256, 2, 3).mean(axis=(1, 3))
    assert np.abs(shrunk.mean(axis=(0, 1)) - small["base_color"].mean(axis=(0, 1))).max() < 8
    # the same bricks in the same places: correlation of the downsampled images
    a, b = luma(shrunk[..., :3]).ravel(), luma(small["base_color"]).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.8


# --------------------------------------------------------------------------- what artists notice


def test_polished_gold_is_metallic_smooth_and_yellow() -> None:
    out = maps("polished gold")
    r, g, b = out["base_color"].reshape(-1, 3).mean(axis=0)
    assert out["metallic"].mean() > 0.9 * 255
    assert out["roughness"].mean() < 0.2 * 255
    assert r > b + 60 and g > b + 40 and r >= g


def test_rusty_iron_is_rougher_than_polished_steel() -> None:
    rusty, steel = maps("rusty iron"), maps("polished steel")
    assert rusty["roughness"].mean() > steel["roughness"].mean() + 0.25 * 255
    assert rusty["metallic"].mean() < steel["metallic"].mean() - 0.2 * 255


def test_red_brick_is_red() -> None:
    r, g, b = maps("red brick")["base_color"].reshape(-1, 3).mean(axis=0)
    assert r > 1.5 * g and r > 1.5 * b
    assert maps("red brick")["metallic"].max() == 0


def test_green_patina_is_green_and_not_metal_where_it_grows() -> None:
    out = maps("weathered bronze with green patina")
    base = out["base_color"].reshape(-1, 3).astype(int)
    metal = out["metallic"].ravel().astype(float)
    green = base[:, 1] > base[:, 0] + 10
    assert 0.15 < green.mean() < 0.85
    assert metal[green].mean() < 0.3 * 255
    assert metal[~green].mean() > 0.6 * 255
    rough = out["roughness"].ravel().astype(float)
    assert rough[green].mean() > rough[~green].mean() + 40


def test_dark_oak_is_darker_than_light_oak() -> None:
    dark = luma(maps("dark oak wood")["base_color"]).mean()
    light = luma(maps("light oak wood")["base_color"]).mean()
    assert dark < light - 40


def test_colour_words_recolour_the_material() -> None:
    r, g, b = maps("blue plastic")["base_color"].reshape(-1, 3).mean(axis=0)
    assert b > r + 60 and b > g + 40
    black = maps("black leather")["base_color"].mean()
    assert black < luma(maps("leather")["base_color"]).mean() - 30


def test_grout_colour_attaches_to_the_grout() -> None:
    out = maps("white tiles with black grout")
    lum = luma(out["base_color"])
    assert np.percentile(lum, 99) > 200 and np.percentile(lum, 2) < 40


def test_finish_words_move_roughness() -> None:
    base = maps("plastic")["roughness"].mean()
    assert maps("glossy plastic")["roughness"].mean() < base - 40
    assert maps("matte plastic")["roughness"].mean() > base + 40
    assert maps("wet concrete")["roughness"].mean() < maps("concrete")["roughness"].mean() - 60
    wet, dry = maps("wet concrete")["base_color"], maps("concrete")["base_color"]
    assert luma(wet).mean() < luma(dry).mean() - 20


def test_painted_metal_is_not_metallic_until_worn_through() -> None:
    painted, worn = maps("red painted metal"), maps("worn red painted metal")
    assert painted["metallic"].mean() < 0.05 * 255
    assert 0.02 * 255 < worn["metallic"].mean() < 0.5 * 255
    r, g, _ = painted["base_color"].reshape(-1, 3).mean(axis=0)
    assert r > 2 * g


def test_checker_alternates_two_colours() -> None:
    assert parse_prompt("checkered floor").layout == "tile"
    lum = luma(maps("black and white checkered tiles")["base_color"])
    cell = RES // 6  # six tiles a side: sample the centres of two neighbouring tiles
    assert abs(lum[cell // 2, cell // 2] - lum[cell // 2, cell + cell // 2]) > 120


def test_negative_prompt_removes_words() -> None:
    without_rust = maps("rusty iron", negative="rust")
    iron = maps("iron")
    for role in MAP_ROLES:
        assert np.array_equal(without_rust[role], iron[role]), role
    assert parse_prompt("shiny red brick", "shiny, red").mods == {}
    assert parse_prompt("shiny red brick", "shiny, red").colors == []


def test_rust_alone_is_mostly_rust() -> None:
    out = maps("rust")
    assert out["metallic"].mean() < 0.3 * 255 and out["roughness"].mean() > 0.7 * 255


@pytest.mark.parametrize(
    "prompt",
    ["walnut", "pine planks", "aluminium", "chrome", "silver", "brass", "stone", "rock",
     "granite", "wool", "cloth", "plaster", "grass", "moss", "mud", "ground", "rubber", "paper",
     "ice", "lava", "scales", "concrete", "sand", "large tiles", "small bricks", "checkered tiles",
     "very dirty scratched cracked old wet mossy rough stone"],
)
def test_whole_vocabulary_generates(prompt: str) -> None:
    out = generate_maps(prompt, 2, 48)
    assert out["base_color"].std() > 0.5  # never a blank image
    assert np.abs(decode_normals(out["normal"])).max() <= 1.0


# --------------------------------------------------------------------------- normals


def test_normal_map_vectors_are_unit_length() -> None:
    for prompt in ("red brick", "cobblestone", "brown leather"):
        n = decode_normals(maps(prompt)["normal"])
        length = np.linalg.norm(n, axis=2)
        assert np.percentile(np.abs(length - 1), 99) < 0.03
        assert (n[..., 2] > 0).all()


def test_flat_height_gives_the_flat_normal() -> None:
    flat = noise.normal_rows(np.zeros((16, 16), np.float32), 0, 16, 0.05)
    assert (flat.reshape(-1, 3) == (128, 128, 255)).all()


def test_normal_map_convention_is_opengl() -> None:
    rows = np.arange(32, dtype=np.float32)[:, None] * np.ones((1, 32), np.float32)
    down = noise.normal_rows(np.sin(rows / 32 * 2 * np.pi) * 0.1, 0, 32, 1.0)
    # rows 0..7: height grows down the image, so the slope faces up: +Y, green above 128
    assert down[2:6, :, 1].min() > 140 and abs(int(down[2:6, :, 0].mean()) - 128) <= 1
    right = noise.normal_rows(np.sin(rows.T / 32 * 2 * np.pi) * 0.1, 0, 32, 1.0)
    # height grows to the right, so the slope faces left: -X, red below 128
    assert right[:, 2:6, 0].max() < 116


def test_normal_strength_does_not_depend_on_resolution() -> None:
    tilt = []
    for res in (64, 256):
        n = decode_normals(maps("cobblestone", res=res)["normal"])
        tilt.append(np.hypot(n[..., 0], n[..., 1]).mean())
    assert tilt[1] == pytest.approx(tilt[0], rel=0.35)


# --------------------------------------------------------------------------- noise


def test_fbm_is_normalised_periodic_and_resolution_independent() -> None:
    rng = lambda: noise.rng_for(9, "field")  # noqa: E731
    small = noise.fbm_factors((64, 64), 4, rng(), octaves=3).rows(0, 64)
    large = noise.fbm_factors((128, 128), 4, rng(), octaves=3).rows(0, 128)
    assert abs(float(small.mean())) < 1e-4 and float(small.std()) == pytest.approx(1.0, abs=1e-3)
    assert np.corrcoef(small.ravel(), large[::2, ::2].ravel())[0, 1] > 0.999
    for axis in (0, 1):
        assert seam_ratio(small, axis) < 1.25


def test_cellular_is_periodic_and_ordered() -> None:
    f1, f2, ident = noise.Cellular(96, 6, noise.rng_for(1, "c")).rows(0, 96)
    assert (f1 <= f2 + 1e-6).all() and f1.max() < 1.5
    assert len(np.unique(ident)) == 36
    for arr in (f1, f2):
        assert seam_ratio(arr, 0) < 1.25 and seam_ratio(arr, 1) < 1.25


# --------------------------------------------------------------------------- provider


def request(tmp_path: Path, **kw: object) -> TextureRequest:
    base = dict(job_id="j1", prompt="oak wood", seed=4, resolution=64,
                out_dir=str(tmp_path / "out"), file_stem="Cube_oak")
    base.update(kw)
    return TextureRequest(**base)  # type: ignore[arg-type]


def test_provider_identity() -> None:
    p = ProceduralProvider()
    assert (p.id, p.label) == ("PROCEDURAL", "Offline (procedural)")
    assert (p.offline, p.mesh_format) == (True, "")
    assert (p.max_concurrency, p.poll_interval, p.resubmit_safe) == (1, 0.0, True)
    assert p.check_ready() == ""


def test_submit_is_free_and_names_the_job_by_its_inputs(tmp_path: Path) -> None:
    p, token = ProceduralProvider(), CancelToken()
    first = p.submit(request(tmp_path), token)
    assert first.startswith("local-") and first == p.submit(request(tmp_path), token)
    assert first != p.submit(request(tmp_path, seed=5), token)
    assert first != p.submit(request(tmp_path, enable_pbr=False), token)
    assert not (tmp_path / "out").exists()  # no work done at submit


def test_fetch_writes_pngs_that_read_back_equal(tmp_path: Path) -> None:
    p, token, req = ProceduralProvider(), CancelToken(), request(tmp_path)
    remote = p.submit(req, token)
    status = p.poll(remote, req, token)
    assert status.state is RemoteState.SUCCEEDED and status.progress == 1.0
    assert set(status.maps) == set(MAP_ROLES)
    seen: list[tuple[float, str]] = []
    paths = p.fetch(remote, status, req, token, lambda f, m: seen.append((f, m)))
    expected = generate_maps("oak wood", 4, 64)
    assert set(paths) == set(MAP_ROLES)
    for role, path in paths.items():
        assert Path(path).name == f"Cube_oak_{role}.png"
        back = read_png(path)
        assert np.array_equal(back, expected[role]), role
        assert back.shape[:2] == (64, 64)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("roughness" in m for _, m in seen)


def test_without_pbr_only_the_base_colour(tmp_path: Path) -> None:
    p, token, req = ProceduralProvider(), CancelToken(), request(tmp_path, enable_pbr=False)
    status = p.poll(p.submit(req, token), req, token)
    assert set(status.maps) == {"base_color"}
    paths = p.fetch("local-x", status, req, token, lambda f, m: None)
    assert set(paths) == {"base_color"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["Cube_oak_base_color.png"]


def test_cancel_before_fetch(tmp_path: Path) -> None:
    p, token, req = ProceduralProvider(), CancelToken(), request(tmp_path)
    status = p.poll(p.submit(req, token), req, token)
    token.cancel()
    with pytest.raises(Canceled):
        p.fetch("local-x", status, req, token, lambda f, m: None)


def test_cancel_during_generation_stops_without_files(tmp_path: Path) -> None:
    p, token, req = ProceduralProvider(), CancelToken(), request(tmp_path, resolution=256)
    status = p.poll(p.submit(req, token), req, token)

    def progress(fraction: float, message: str) -> None:
        if fraction > 0.1:
            token.cancel()

    with pytest.raises(Canceled):
        p.fetch("local-x", status, req, token, progress)
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_folder_is_an_artist_readable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    p, token = ProceduralProvider(), CancelToken()
    req = request(tmp_path, out_dir=str(blocker / "maps"))
    with pytest.raises(ProviderError, match="Could not write"):
        p.fetch("local-x", p.poll("local-x", req, token), req, token, lambda f, m: None)
    with pytest.raises(ProviderError, match="folder"):
        p.fetch("local-x", p.poll("local-x", req, token), request(tmp_path, out_dir=""), token,
                lambda f, m: None)
