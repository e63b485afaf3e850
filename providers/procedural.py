"""Offline provider: seamless PBR maps made from the prompt's words, with no network and no key.

The prompt is read as a material (wood, brick, gold, ...), an optional layout (bricks, tiles,
planks), colours and modifiers (worn, polished, wet, rusty, with green patina, ...). Each
material is a recipe of periodic noise and periodic coordinates, so every map tiles exactly
and looks the same at any resolution. The texture is evaluated in bands of rows on two threads:
each band's temporaries stay small and in cache, which keeps 4096 maps fast and lean.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from statistics import NormalDist
from typing import Any, TypeVar

import numpy as np

from ..formats import imagefile
from . import noise
from .base import (
    BASE_COLOR,
    HEIGHT,
    MAP_ROLES,
    METALLIC,
    NORMAL,
    ROUGHNESS,
    CancelToken,
    ProgressFn,
    Provider,
    ProviderError,
    RemoteState,
    RemoteStatus,
    TextureRequest,
)
from .noise import F32, smoothstep

StepFn = Callable[[float, str], None]
Color = tuple[float, float, float]
Num = np.ndarray | float | np.floating[Any]
T = TypeVar("T")

# --------------------------------------------------------------------------- vocabulary

COLORS: dict[str, Color] = {
    "red": (0.70, 0.10, 0.08), "green": (0.16, 0.48, 0.16), "blue": (0.10, 0.25, 0.70),
    "yellow": (0.90, 0.76, 0.15), "orange": (0.90, 0.45, 0.08), "purple": (0.42, 0.18, 0.55),
    "violet": (0.52, 0.30, 0.72), "pink": (0.92, 0.55, 0.66), "brown": (0.42, 0.27, 0.15),
    "black": (0.035, 0.035, 0.035), "white": (0.92, 0.92, 0.90), "grey": (0.50, 0.50, 0.50),
    "teal": (0.05, 0.48, 0.48), "cyan": (0.15, 0.75, 0.85), "beige": (0.85, 0.78, 0.62),
    "magenta": (0.80, 0.10, 0.55), "navy": (0.07, 0.11, 0.35), "maroon": (0.45, 0.08, 0.10),
    "olive": (0.42, 0.42, 0.15), "turquoise": (0.20, 0.75, 0.70), "tan": (0.78, 0.64, 0.45),
    "cream": (0.95, 0.91, 0.80), "ivory": (0.96, 0.94, 0.86), "crimson": (0.75, 0.06, 0.15),
    "lime": (0.55, 0.85, 0.20), "indigo": (0.20, 0.15, 0.50), "charcoal": (0.20, 0.20, 0.21),
    "khaki": (0.74, 0.69, 0.50), "burgundy": (0.50, 0.07, 0.15), "mint": (0.60, 0.88, 0.72),
    "lavender": (0.70, 0.62, 0.85), "salmon": (0.95, 0.55, 0.45), "ochre": (0.78, 0.55, 0.15),
    "emerald": (0.10, 0.55, 0.30), "scarlet": (0.85, 0.12, 0.08), "sky": (0.50, 0.72, 0.92),
}
_COLOR_ALIASES = {"gray": "grey", "golden": "gold", "silvery": "silver", "aqua": "cyan"}
_METAL_COLOR_WORDS = ("gold", "silver", "copper", "bronze", "brass")  # colours when attached

# word -> (recipe, variant)
MATERIALS: dict[str, tuple[str, str]] = {}


def _words(recipe: str, variant: str, *words: str) -> None:
    for word in words:
        MATERIALS[word] = (recipe, variant)


_words("wood", "wood", "wood", "wooden", "timber", "lumber")
for _v in ("oak", "walnut", "pine", "maple", "cherry", "mahogany", "birch", "ebony", "teak",
           "cedar", "ash", "beech", "bamboo"):
    _words("wood", _v, _v)
_words("metal", "steel", "metal", "metallic", "steel", "stainless")
_words("metal", "iron", "iron")
_words("metal", "aluminium", "aluminium", "aluminum", "alu")
_words("metal", "chrome", "chrome", "chromed", "chromium", "mirror")
_words("metal", "titanium", "titanium")
_words("metal", "gold", "gold", "golden", "gilded")
_words("metal", "silver", "silver", "silvery")
_words("metal", "copper", "copper")
_words("metal", "bronze", "bronze")
_words("metal", "brass", "brass")
_words("rust", "rust", "rust")
_words("stone", "stone", "stone", "stony", "slate", "sandstone", "limestone", "basalt")
_words("stone", "rock", "rock", "rocky", "cliff", "boulder")
_words("marble", "marble", "marble", "marbled")
_words("granite", "granite", "granite")
_words("fabric", "cloth", "fabric", "cloth", "cotton", "linen", "textile", "woven", "weave")
_words("fabric", "denim", "denim", "jean", "jeans")
_words("fabric", "wool", "wool", "woolen", "woollen", "knit", "tweed", "felt", "carpet")
_words("fabric", "canvas", "canvas", "burlap", "hessian", "jute")
_words("fabric", "silk", "silk", "satin", "velvet")
_words("leather", "leather", "leather", "leathery", "suede", "hide")
_words("concrete", "concrete", "concrete", "cement")
_words("concrete", "asphalt", "asphalt", "tarmac")
_words("plaster", "plaster", "plaster", "stucco", "drywall")
_words("sand", "sand", "sand", "sandy", "beach", "dune", "desert")
_words("grass", "grass", "grass", "grassy", "lawn", "turf")
_words("moss", "moss", "moss", "mossy", "lichen")
_words("ground", "ground", "ground", "dirt", "soil", "earth")
_words("ground", "mud", "mud", "muddy", "swamp")
_words("cobble", "cobble", "cobblestone", "cobble", "cobbled", "pavers", "paving")
_words("cobble", "pebble", "pebble", "gravel", "pebbly")
_words("plastic", "plastic", "plastic", "vinyl", "acrylic", "polymer")
_words("rubber", "rubber", "rubber", "rubbery", "tire", "tyre")
_words("paper", "paper", "paper", "papery", "parchment")
_words("paper", "cardboard", "cardboard", "kraft")
_words("ice", "ice", "ice", "icy", "frozen", "glacier")
_words("lava", "lava", "lava", "magma", "molten", "volcanic")
_words("scales", "scales", "scale", "scaly", "scaled", "reptile", "snake", "dragon", "lizard",
       "fish", "crocodile")
_words("clay", "clay", "clay", "terracotta")
_words("ceramic", "ceramic", "ceramic", "porcelain", "enamel")

LAYOUTS = {
    "brick": "brick", "brickwork": "brick", "masonry": "brick",
    "tile": "tile", "tiled": "tile", "tiling": "tile", "checker": "tile", "checkered": "tile",
    "checkerboard": "tile", "chequered": "tile",
    "plank": "plank", "floorboard": "plank", "parquet": "plank", "board": "plank",
    "decking": "plank",
}

MODIFIERS: dict[str, str] = {}
for _mod, _ws in {
    "worn": "worn weathered old aged ancient used battered distressed damaged beaten antique "
            "vintage rustic abandoned",
    "polished": "polished glossy shiny gloss lacquered varnished sleek reflective glazed waxed "
                "lustrous",
    "matte": "matte matt dull satin frosted",
    "rough": "rough coarse rugged bumpy",
    "smooth": "smooth",
    "dark": "dark darker deep dim",
    "light": "light lighter pale bright bleached faded",
    "dirty": "dirty grimy filthy dusty stained greasy soiled grungy grunge",
    "clean": "clean new pristine fresh spotless",
    "wet": "wet damp soaked rainy moist puddle",
    "mossy": "mossy overgrown",
    "patina": "patina verdigris oxidized oxidised tarnished",
    "cracked": "cracked crack cracking broken crackled fractured",
    "scratched": "scratched scratch scuffed scuff",
    "painted": "painted paint coated",
    "rusty": "rusty rusted corroded corrosion",
    "brushed": "brushed",
    "hammered": "hammered dented forged beaten",
    "checker": "checker checkered checkerboard chequered",
}.items():
    for _w in _ws.split():
        MODIFIERS.setdefault(_w, _mod)

INTENSITY = {
    "slightly": 0.5, "somewhat": 0.6, "lightly": 0.5, "mildly": 0.5, "bit": 0.5, "little": 0.5,
    "subtle": 0.5, "very": 1.5, "heavily": 1.6, "heavy": 1.6, "extremely": 1.8, "really": 1.4,
    "highly": 1.5, "completely": 2.0, "fully": 2.0, "totally": 2.0, "deeply": 1.5,
    "thoroughly": 1.8, "super": 1.6, "strongly": 1.5, "badly": 1.6,
}
SCALES = {
    "large": 0.6, "big": 0.6, "huge": 0.45, "giant": 0.4, "wide": 0.7, "chunky": 0.6,
    "small": 1.6, "tiny": 2.0, "fine": 1.6, "mini": 1.8, "narrow": 1.4, "dense": 1.4,
}
# Material words that read as a modifier when another material is named ("rusty iron").
_DUAL = {"rust": "rusty", "moss": "mossy", "mud": "dirty", "dirt": "dirty", "lichen": "mossy"}
# Nouns a colour can attach to instead of tinting the base ("with green patina").
_ATTACH = {"patina": "patina", "verdigris": "patina", "moss": "moss", "vein": "vein",
           "veining": "vein", "grout": "joint", "mortar": "joint", "paint": "paint",
           "rust": "rust", "joint": "joint", "seam": "joint", "crack": "crack"}
_VOCAB = (set(COLORS) | set(_COLOR_ALIASES) | set(MATERIALS) | set(LAYOUTS) | set(MODIFIERS)
          | set(INTENSITY) | set(SCALES) | set(_ATTACH))


@dataclass
class Params:
    """What the prompt asks for, in the recipes' terms."""

    material: str = "plaster"
    variant: str = "plaster"
    layout: str = ""
    colors: list[Color] = field(default_factory=list)
    attached: dict[str, Color] = field(default_factory=dict)
    mods: dict[str, float] = field(default_factory=dict)
    scale: float = 1.0
    words: tuple[str, ...] = ()

    def amount(self, mod: str) -> float:
        return self.mods.get(mod, 0.0)


def _normalize(word: str) -> str:
    """Map plurals and simple inflections onto the vocabulary (tiles -> tile, veins -> vein)."""
    if word in _VOCAB:
        return word
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ing", "")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[: -len(suffix)] + repl
            if stem in _VOCAB:
                return stem
    return word


def tokenize(text: str) -> list[str]:
    return [_normalize(w) for w in re.findall(r"[a-z]+", (text or "").lower())]


def _meanings(word: str) -> set[str]:
    """Every sense a word can carry, so a negative prompt can remove it in all of them."""
    out: set[str] = set()
    color = _COLOR_ALIASES.get(word, word)
    if color in COLORS:
        out.add("color:" + color)
    if word in MATERIALS:
        recipe, variant = MATERIALS[word]
        out.add("material:" + (variant if recipe == "metal" else recipe))
    if word in _DUAL:
        out.add("mod:" + _DUAL[word])
    if word in MODIFIERS:
        out.add("mod:" + MODIFIERS[word])
    if word in LAYOUTS:
        out.add("layout:" + LAYOUTS[word])
    if MODIFIERS.get(word) == "rusty":
        out.add("material:rust")
    return out


def parse_prompt(prompt: str, negative_prompt: str = "") -> Params:
    """Read the prompt's words into Params; unknown words are ignored, never an error."""
    banned: set[str] = set()
    for word in tokenize(negative_prompt):
        banned |= _meanings(word)
    tokens = [w for w in tokenize(prompt) if not (_meanings(w) & banned)]
    p = Params(words=tuple(tokens))
    materials: list[tuple[str, str, str]] = []  # (word, recipe, variant)
    boost = 1.0
    for i, word in enumerate(tokens):
        color = _COLOR_ALIASES.get(word, word)
        target = _attach_target(tokens, i)
        if target and (color in COLORS or color in _METAL_COLOR_WORDS):
            p.attached[target] = COLORS.get(color) or _METALS[color][0]
            continue
        if word in INTENSITY:
            boost = INTENSITY[word]
            continue
        if word in SCALES:
            p.scale *= SCALES[word]
        elif color in COLORS:
            p.colors.append(COLORS[color])
        elif word in LAYOUTS:
            p.layout = p.layout or LAYOUTS[word]
        if word in MODIFIERS:
            mod = MODIFIERS[word]
            p.mods[mod] = max(p.mods.get(mod, 0.0), boost)
        if word in MATERIALS and word not in MODIFIERS:
            materials.append((word, *MATERIALS[word]))
        boost = 1.0
    _choose_material(p, materials)
    if "checker" in p.mods:  # a checkerboard needs two colours: fill in black and white
        p.layout = p.layout or "tile"
        p.colors += [COLORS["white"], COLORS["black"]][len(p.colors) :]
        if len(p.colors) == 2 and p.colors[0] == p.colors[1]:
            p.colors[1] = COLORS["black" if p.colors[0] == COLORS["white"] else "white"]
    if "clean" in p.mods:
        for mod in ("dirty", "worn"):
            p.mods.pop(mod, None)
    p.scale = float(min(max(p.scale, 0.3), 3.0))
    return p


def _attach_target(tokens: list[str], i: int) -> str:
    """The noun a colour word at `i` describes, when it is not the base ("green patina")."""
    for j in range(i + 1, min(i + 3, len(tokens))):
        word = tokens[j]
        if word in _ATTACH:
            return _ATTACH[word]
        if word not in INTENSITY and word not in ("dark", "light", "pale", "bright"):
            return ""
    return ""


def _choose_material(p: Params, found: list[tuple[str, str, str]]) -> None:
    """Pick the base recipe; dual words (rust, moss, mud) become modifiers beside another."""
    primary = [m for m in found if m[0] not in _DUAL]
    for word, _recipe, _variant in found:
        if word in _DUAL and primary:
            p.mods.setdefault(_DUAL[word], 1.0)
    pool = primary or found
    surfaces = [m for m in pool if m[1] not in ("clay", "ceramic")] or pool
    if surfaces:
        _word, p.material, p.variant = surfaces[0]
    elif p.layout == "brick":
        p.material, p.variant = "clay", "clay"
    elif p.layout == "tile":
        p.material, p.variant = "ceramic", "ceramic"
    elif p.layout == "plank":
        p.material, p.variant = "wood", "wood"
    elif "rusty" in p.mods or "patina" in p.mods or "brushed" in p.mods or "hammered" in p.mods:
        p.material, p.variant = "metal", "bronze" if "patina" in p.mods else "iron"
    elif "mossy" in p.mods:
        p.material, p.variant = "stone", "stone"
    if p.material == "rust":  # rust alone: iron, nearly all of it rusted
        p.material, p.variant = "metal", "iron"
        p.mods["rusty"] = max(p.mods.get("rusty", 0.0), 2.2)
    if p.material == "wood" and p.layout == "" and ("floor" in p.words or "floorboard" in p.words):
        p.layout = "plank"
    oxidized = "oxidized" in p.words or "oxidised" in p.words
    if oxidized and p.material == "metal" and p.variant in ("iron", "steel"):
        p.mods["rusty"] = p.mods.pop("patina", 1.0)


# --------------------------------------------------------------------------- strips


class Bank:
    """State shared by all bands of one texture: noise factors and cell fields, built once."""

    def __init__(self, res: int, seed: int, scale: float) -> None:
        self.res, self.seed, self.scale = res, seed, scale
        self._lock = threading.Lock()
        self._cache: dict[tuple[object, ...], object] = {}

    def get(self, key: tuple[object, ...], build: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]  # type: ignore[return-value]


class Strip:
    """Rows r0..r1 of the texture: coordinates plus access to the shared periodic fields."""

    def __init__(self, bank: Bank, r0: int, r1: int) -> None:
        self.bank, self.r0, self.r1, self.res = bank, r0, r1, bank.res
        self.shape = (r1 - r0, bank.res)
        # pixel centres: the tile's edge falls between the last and the first pixel
        self.u = ((np.arange(bank.res, dtype=F32) + F32(0.5)) / F32(bank.res))[None, :]
        self.v = ((np.arange(r0, r1, dtype=F32) + F32(0.5)) / F32(bank.res))[:, None]

    def freq(self, base: float) -> int:
        """A pattern count scaled by the prompt's size words, whole so the pattern tiles."""
        return max(1, round(base * self.bank.scale))

    def noise(self, name: str, freq: int | tuple[int, int], octaves: int = 4,
              gain: float = 0.5) -> np.ndarray:
        """Unit-variance periodic fBm for these rows; `name` keeps fields independent."""
        bank = self.bank
        factors = bank.get(("fbm", name, freq, octaves, gain), lambda: noise.fbm_factors(
            (bank.res, bank.res), freq, noise.rng_for(bank.seed, name), octaves, gain))
        return factors.rows(self.r0, self.r1)

    def cells(self, name: str, base: float, jitter: float = 0.9) -> tuple[np.ndarray, ...]:
        """Worley (F1, F2, cell index) over about `base` cells per side, scaled by size words.

        The count is snapped to a power of two so power-of-two maps need no fractional resampling.
        """
        bank = self.bank
        count = self.cell_count(base)
        cell = bank.get(("cells", name, count, jitter), lambda: noise.Cellular(
            bank.res, count, noise.rng_for(bank.seed, name), jitter))
        return cell.rows(self.r0, self.r1)

    def cell_count(self, base: float) -> int:
        return int(2 ** max(1, round(np.log2(max(base * self.bank.scale, 2.0)))))

    def table(self, name: str, size: int) -> np.ndarray:
        """`size` uniform random values, the same for every band."""
        bank = self.bank
        return bank.get(("table", name, size),
                        lambda: noise.rng_for(bank.seed, name).random(size).astype(F32))

    def lines(self, name: str, freq: int, a: int, b: int) -> np.ndarray:
        """1-D noise read at (a*x + b*y) mod res: straight streaks that tile (a > 0).

        The periodic table is repeated end to end and read through a strided view, so the
        band costs one copy instead of index arithmetic over every pixel.
        """
        bank, res, rows = self.bank, self.res, self.r1 - self.r0
        table = bank.get(("line", name, freq), lambda: noise.line_noise(
            res, freq, noise.rng_for(bank.seed, name)))
        lead = -(-abs(b) * rows // res) * res  # whole periods of room for rows stepping back
        repeats = (lead + (a + 1) * res + abs(b) * rows) // res + 1
        longer = np.tile(table, repeats)
        start = lead + (b * self.r0) % res
        step = longer.strides[0]
        view = np.lib.stride_tricks.as_strided(
            longer[start:], shape=(rows, res), strides=(b * step, a * step), writeable=False)
        return view.copy()


@dataclass
class Layers:
    """One band of the material; height is 0..1 around 0.5, cavity/edge are 0..1 masks."""

    albedo: np.ndarray  # (3, rows, res) sRGB 0..1, channel-first
    height: np.ndarray
    rough: np.ndarray
    metal: np.ndarray
    cavity: np.ndarray  # crevices: where dirt, moss and patina gather
    edge: np.ndarray  # exposed places: where wear shows first
    ref: float = 0.5  # nominal luminance, the pivot for colour words
    bump: float = 0.002  # relief depth in texture widths for a height change of 1
    tinted: bool = False  # the recipe already used the colour words itself


@dataclass
class Cells:
    """A brick/tile/plank layout for one band."""

    rand: np.ndarray  # per-cell uniform random value
    rand2: np.ndarray
    parity: np.ndarray  # checkerboard 0/1 (int)
    dist: np.ndarray  # distance to the nearest joint, in texture units
    gap: float  # half joint width, texture units
    bevel: float


# --------------------------------------------------------------------------- colour helpers


def rgb(color: Color | Iterable[float] | np.ndarray) -> np.ndarray:
    """A colour as a (3, 1, 1) array: colour bands are channel-first, (3, rows, res).

    Channel-first keeps numpy's inner loops long; a trailing axis of 3 is ~10x slower.
    """
    return np.asarray(color, dtype=F32).reshape(3, 1, 1)


def lerp(a: Num, b: Num, t: np.ndarray) -> np.ndarray:
    return a + (np.asarray(b, F32) - a) * t


def lerp3(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Mix two colours (RGB triples or colour bands) by a (rows, res) weight."""
    return a + (b - a) * t


def ramp(t: np.ndarray, stops: Sequence[tuple[float, Color]]) -> np.ndarray:
    """Piecewise-linear colour ramp over 0..1."""
    out = np.broadcast_to(rgb(stops[0][1]), (3, *t.shape)).copy()
    for (p0, c0), (p1, c1) in pairwise(stops):
        w = np.clip((t - F32(p0)) * F32(1.0 / (p1 - p0)), 0.0, 1.0)
        out += (rgb(c1) - rgb(c0)) * w
    return out


def _scaled(color: Color, k: float) -> Color:
    return (color[0] * k, color[1] * k, color[2] * k)


def _mix(a: Color, b: Color, t: float) -> Color:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def luminance(albedo: np.ndarray) -> np.ndarray:
    out = albedo[0] * F32(0.2126)
    out += albedo[1] * F32(0.7152)
    out += albedo[2] * F32(0.0722)
    return out


def coverage(field_: np.ndarray, amount: float, soft: float = 0.3) -> np.ndarray:
    """Mask covering about `amount` of a roughly unit-normal field, with soft borders."""
    amount = min(max(amount, 0.01), 0.99)
    threshold = NormalDist().inv_cdf(1.0 - amount)
    return smoothstep(threshold - soft, threshold + soft, field_)


def _tint(albedo: np.ndarray, color: np.ndarray, ref: float, strength: float) -> np.ndarray:
    """Recolour keeping the pattern's light and dark: colour x (luminance / nominal)."""
    scale = np.clip(luminance(albedo) * F32(1.0 / max(ref, 1e-3)), 0.0, 2.5)
    tinted: np.ndarray = color * scale
    if strength >= 1:
        return tinted
    tinted -= albedo
    tinted *= F32(strength)
    tinted += albedo
    return tinted


def _zeros(s: Strip) -> np.ndarray:
    return np.zeros(s.shape, F32)


def _layers(s: Strip, albedo: np.ndarray, height: np.ndarray, rough: np.ndarray | float,
            metal: float = 0.0, *, ref: Color | np.ndarray, bump: float,
            cavity: np.ndarray | None = None, edge: np.ndarray | None = None) -> Layers:
    rough_a = np.broadcast_to(np.asarray(rough, F32), s.shape).astype(F32)
    return Layers(
        albedo=albedo.astype(F32, copy=False), height=height.astype(F32, copy=False),
        rough=rough_a, metal=np.full(s.shape, metal, F32),
        cavity=cavity if cavity is not None else np.clip(F32(0.5) - height, 0, 1) * F32(2),
        edge=edge if edge is not None else np.clip(height - F32(0.5), 0, 1) * F32(2),
        ref=luminance(rgb(ref)).item(), bump=bump)


# --------------------------------------------------------------------------- recipes

_WOODS: dict[str, tuple[Color, Color]] = {  # earlywood, latewood
    "wood": ((0.74, 0.54, 0.33), (0.50, 0.32, 0.17)),
    "oak": ((0.78, 0.60, 0.38), (0.56, 0.38, 0.20)),
    "walnut": ((0.46, 0.31, 0.20), (0.28, 0.17, 0.10)),
    "pine": ((0.90, 0.76, 0.52), (0.76, 0.50, 0.26)),
    "maple": ((0.92, 0.81, 0.63), (0.80, 0.65, 0.45)),
    "cherry": ((0.74, 0.44, 0.27), (0.54, 0.27, 0.15)),
    "mahogany": ((0.56, 0.26, 0.15), (0.38, 0.15, 0.08)),
    "birch": ((0.93, 0.85, 0.70), (0.83, 0.71, 0.53)),
    "ebony": ((0.20, 0.15, 0.12), (0.09, 0.07, 0.06)),
    "teak": ((0.70, 0.50, 0.30), (0.50, 0.33, 0.18)),
    "cedar": ((0.80, 0.50, 0.32), (0.62, 0.33, 0.18)),
    "ash": ((0.86, 0.76, 0.60), (0.66, 0.54, 0.38)),
    "beech": ((0.86, 0.68, 0.50), (0.72, 0.52, 0.36)),
    "bamboo": ((0.88, 0.76, 0.52), (0.74, 0.60, 0.36)),
}
_PORES = ("oak", "walnut", "ash", "wood", "teak", "mahogany")


def _wood(s: Strip, p: Params, cells: Cells | None) -> Layers:
    early, late = (rgb(c) for c in _WOODS.get(p.variant, _WOODS["wood"]))
    phase = s.noise("wood.arch", (3, 2), 3) * F32(0.55)
    phase += s.noise("wood.wave", (8, 3), 2) * F32(0.12)
    phase += s.v * F32(s.freq(13))
    if cells is not None:
        phase += cells.rand * F32(7.0)  # each plank its own figure
    ring = phase - np.floor(phase)
    late_t = smoothstep(0.55, 0.9, ring) * (F32(1) - smoothstep(0.94, 1.0, ring))
    grain = s.noise("wood.grain", (s.freq(150), 4), 2)
    fibre = s.noise("wood.fibre", (s.freq(360), 6), 1)
    tone = s.noise("wood.tone", (6, 2), 3)
    t = np.clip(late_t * F32(0.8) + grain * F32(0.1) + tone * F32(0.1), 0, 1)
    albedo = lerp3(early, late, t)
    shade = F32(1) + tone * F32(0.05) + fibre * F32(0.035)
    height = F32(0.5) - late_t * F32(0.1) + grain * F32(0.03) + fibre * F32(0.02)
    pores = _zeros(s)
    if p.variant in _PORES:
        pores = smoothstep(2.0, 2.7, s.noise("wood.pores", (s.freq(260), 18), 1))
        shade -= pores * F32(0.2)
        height -= pores * F32(0.15)
    albedo *= shade
    rough = F32(0.62) + late_t * F32(0.06) + pores * F32(0.15)
    ref = early * F32(0.6) + late * F32(0.4)
    return _layers(s, albedo, height, rough, ref=ref, bump=0.0035, cavity=pores,
                   edge=np.clip(grain * F32(0.3), 0, 1))


_METALS: dict[str, tuple[Color, float]] = {  # base colour (F0-ish, sRGB), roughness
    "steel": ((0.78, 0.79, 0.80), 0.32), "iron": ((0.62, 0.62, 0.63), 0.48),
    "aluminium": ((0.91, 0.92, 0.93), 0.30), "chrome": ((0.80, 0.81, 0.83), 0.06),
    "titanium": ((0.76, 0.73, 0.69), 0.34), "gold": ((1.00, 0.80, 0.42), 0.22),
    "silver": ((0.96, 0.95, 0.92), 0.18), "copper": ((0.93, 0.60, 0.42), 0.28),
    "bronze": ((0.80, 0.58, 0.36), 0.36), "brass": ((0.92, 0.78, 0.44), 0.28),
}


def _metal(s: Strip, p: Params, cells: Cells | None) -> Layers:
    color, rough0 = _METALS.get(p.variant, _METALS["steel"])
    brushed = 0.35 if p.variant in ("steel", "aluminium", "titanium") else 0.1
    brushed = p.mods.get("brushed", brushed)
    smudge = s.noise("metal.smudge", 5, 4)
    streak = s.noise("metal.brush", (192, 3), 2)
    shade = F32(1) + smudge * F32(0.03) + streak * F32(0.04 * brushed)
    rough = F32(rough0) + smudge * F32(0.04 + 0.1 * rough0) + streak * F32(0.06 * brushed)
    height = F32(0.5) + streak * F32(0.02 * brushed)
    if p.variant == "iron":
        cast = s.noise("metal.cast", 24, 3)
        shade += cast * F32(0.05)
        rough += cast * F32(0.08)
        height += cast * F32(0.03)
    wear = s.noise("metal.wear", 9, 4)
    albedo = rgb(color) * shade
    return _layers(s, albedo, height, rough, 1.0, ref=color, bump=0.002,
                   cavity=np.clip(-wear * F32(0.5), 0, 1), edge=np.clip(wear * F32(0.5), 0, 1))


def _hammered(s: Strip, layers: Layers, amount: float) -> None:
    f1, _f2, ident = s.cells("hammer", 16, 0.8)
    dent = F32(1) - np.minimum(f1 * f1 * F32(1.6), F32(1))
    layers.height -= dent * F32(0.25 * min(amount, 1.5))
    layers.rough += (s.table("hammer.r", s.cell_count(16) ** 2)[ident] - F32(0.5)) * F32(0.08)
    layers.bump = max(layers.bump, 0.02)


def _stone(s: Strip, p: Params, cells: Cells | None) -> Layers:
    rock = p.variant == "rock"
    base = s.noise("stone.base", 4, 6, 0.55)
    ridge = noise.ridged(s.noise("stone.ridge", 3, 5, 0.5), 2.5)
    speck = s.noise("stone.speck", s.freq(96), 2)
    height = F32(0.5) + base * F32(0.14) + ridge * F32(0.18 if rock else 0.08) + speck * F32(0.02)
    t = np.clip(F32(0.5) + base * F32(0.2) + speck * F32(0.08), 0, 1)
    stops = ([(0, (0.30, 0.27, 0.24)), (0.5, (0.47, 0.43, 0.38)), (1, (0.62, 0.58, 0.52))] if rock
             else [(0, (0.36, 0.35, 0.33)), (0.5, (0.52, 0.51, 0.48)), (1, (0.68, 0.66, 0.62))])
    albedo = ramp(t, stops)
    albedo *= (F32(1) - ridge * F32(0.18))
    rough = F32(0.86 if rock else 0.8) + speck * F32(0.03)
    return _layers(s, albedo, height, rough, ref=stops[1][1], bump=0.03 if rock else 0.02)


def _marble(s: Strip, p: Params, cells: Cells | None) -> Layers:
    base = rgb(p.colors[0]) if p.colors else rgb((0.92, 0.91, 0.88))
    dark_base = luminance(base).item() < 0.35
    vein_col = rgb(p.attached.get("vein", (0.85, 0.84, 0.80) if dark_base else (0.42, 0.42, 0.44)))
    warp = s.noise("marble.warp", 2, 3) * F32(1.1)
    warp += np.abs(s.noise("marble.turb", 5, 5, 0.55)) * F32(0.9)
    wave = np.abs(np.sin((s.u + s.v * F32(2)) * F32(2 * np.pi) + warp))
    veins = F32(1) - smoothstep(0.0, 0.4, wave)
    veins *= veins
    veins *= smoothstep(-1.2, 0.6, s.noise("marble.fade", 3, 3))
    fine = noise.ridged(s.noise("marble.fine", 5, 5, 0.55), 22.0) * F32(0.25)
    cloud = s.noise("marble.cloud", 4, 4)
    v = np.clip(veins * F32(0.85) + fine + cloud * F32(0.06), 0, 1)
    albedo = lerp3(base * (F32(1) + cloud * F32(0.025)), vein_col, v)
    layers = _layers(s, albedo, F32(0.5) - v * F32(0.03), F32(0.12) + v * F32(0.06),
                     ref=base, bump=0.002)
    layers.tinted = True
    return layers


def _granite(s: Strip, p: Params, cells: Cells | None) -> Layers:
    base = s.noise("granite.base", 8, 3)
    albedo = rgb((0.56, 0.54, 0.53)) * (F32(1) + base * F32(0.06))
    minerals = ((0.10, 0.10, 0.11), (0.88, 0.86, 0.84), (0.70, 0.52, 0.46))
    height = F32(0.5) + base * F32(0.03)
    for i, (color, cut) in enumerate(zip(minerals, (0.7, 1.2, 1.4))):
        grain = s.noise(f"granite.m{i}", s.freq(90), 2)
        m = smoothstep(cut, cut + 0.35, grain)
        albedo = lerp3(albedo, rgb(color), m)
        height += m * F32(0.04 * (i - 0.5))
    return _layers(s, albedo, height, F32(0.35) + base * F32(0.04), ref=(0.5, 0.48, 0.47),
                   bump=0.002)


def _clay(s: Strip, p: Params, cells: Cells | None) -> Layers:
    """Fired clay: the face of a brick."""
    tone = s.noise("clay.tone", 10, 4)
    speck = s.noise("clay.speck", s.freq(120), 2)
    t = np.clip(F32(0.5) + tone * F32(0.18) + speck * F32(0.1), 0, 1)
    albedo = ramp(t, [(0, (0.38, 0.15, 0.09)), (0.5, (0.58, 0.26, 0.17)), (1, (0.72, 0.40, 0.28))])
    pits = smoothstep(1.8, 2.5, s.noise("clay.pits", s.freq(160), 1))
    albedo *= (F32(1) - pits * F32(0.4))
    height = F32(0.5) + tone * F32(0.05) + speck * F32(0.03) - pits * F32(0.3)
    return _layers(s, albedo, height, F32(0.84) + speck * F32(0.04), ref=(0.58, 0.26, 0.17),
                   bump=0.003, cavity=pits)


def _ceramic(s: Strip, p: Params, cells: Cells | None) -> Layers:
    wave = s.noise("ceramic.wave", 6, 3)
    albedo = rgb((0.90, 0.89, 0.86)) * (F32(1) + wave * F32(0.015))
    return _layers(s, albedo, F32(0.5) + wave * F32(0.03), F32(0.1) + wave * F32(0.015),
                   ref=(0.90, 0.89, 0.86), bump=0.001)


_FABRICS = {  # threads per tile, warp colour, weft colour, roughness, twill, fuzz
    "cloth": (56, (0.70, 0.66, 0.60), (0.66, 0.62, 0.56), 0.9, False, 0.08),
    "denim": (72, (0.15, 0.24, 0.44), (0.80, 0.80, 0.77), 0.88, True, 0.1),
    "wool": (28, (0.72, 0.68, 0.62), (0.68, 0.64, 0.58), 0.95, False, 0.25),
    "canvas": (40, (0.76, 0.70, 0.58), (0.72, 0.66, 0.54), 0.9, False, 0.08),
    "silk": (110, (0.86, 0.83, 0.79), (0.82, 0.79, 0.75), 0.35, True, 0.02),
}


def _fabric(s: Strip, p: Params, cells: Cells | None) -> Layers:
    threads, warp_c, weft_c, rough0, twill, fuzz_amt = _FABRICS.get(p.variant, _FABRICS["cloth"])
    repeat = 4 if twill else 2
    n = max(repeat, round(threads * s.bank.scale / repeat) * repeat)
    if p.colors:  # denim keeps some indigo depth whatever its colour
        warp_c = _mix(warp_c, p.colors[0], 0.55) if p.variant == "denim" else p.colors[0]
        weft_c = p.colors[1] if len(p.colors) > 1 else (
            (0.80, 0.80, 0.77) if p.variant == "denim" else _scaled(p.colors[0], 0.92))
    su, sv = s.u * F32(n), s.v * F32(n)
    iu, iv = np.floor(su), np.floor(sv)
    fu, fv = su - iu, sv - iv
    i, j = iu.astype(np.int64), iv.astype(np.int64)
    on_top = ((i + j) % repeat < repeat - 1) if twill else ((i + j) % 2 == 0)
    across_warp, across_weft = np.sin(fu * F32(np.pi)), np.sin(fv * F32(np.pi))
    h_warp = np.sqrt(across_warp) * (F32(0.75) + F32(0.25) * across_weft)
    h_weft = np.sqrt(across_weft) * (F32(0.75) + F32(0.25) * across_warp)
    height = np.where(on_top, h_warp, h_weft)
    slub_u = s.table("fabric.slub.u", n)[i % n]
    slub_v = s.table("fabric.slub.v", n)[j % n]
    fuzz = s.noise("fabric.fuzz", s.freq(200), 2)
    warp_shade = (F32(0.9) + F32(0.2) * slub_u) + fuzz * F32(fuzz_amt * 0.4)
    weft_shade = (F32(0.9) + F32(0.2) * slub_v) + fuzz * F32(fuzz_amt * 0.4)
    shade = np.where(on_top, warp_shade, weft_shade) * (F32(0.7) + F32(0.3) * height)
    albedo = np.where(on_top, rgb(warp_c), rgb(weft_c)) * shade
    height = height * F32(0.8) + fuzz * F32(fuzz_amt * 0.2) + F32(0.1)
    layers = _layers(s, albedo, height, F32(rough0) + fuzz * F32(0.03), ref=warp_c,
                     bump=0.15 / n, cavity=np.clip(F32(0.6) - height, 0, 1),
                     edge=np.clip(height - F32(0.7), 0, 1) * F32(3))
    layers.tinted = bool(p.colors)
    return layers


def _leather(s: Strip, p: Params, cells: Cells | None) -> Layers:
    f1, f2, _ = s.cells("leather", 64, 0.95)
    crease = F32(1) - smoothstep(0.0, 0.22, f2 - f1)
    wrinkle = noise.ridged(s.noise("leather.wrinkle", 5, 4), 5.0)
    tone = s.noise("leather.tone", 6, 4)
    pebble = F32(1) - np.minimum(f1 * f1, F32(1))
    height = F32(0.45) + pebble * F32(0.25) - crease * F32(0.25) - wrinkle * F32(0.25)
    base = rgb((0.40, 0.24, 0.14))
    albedo = base * (F32(1) + tone * F32(0.07) - crease * F32(0.22) - wrinkle * F32(0.2)
                     + pebble * F32(0.05))
    rough = F32(0.58) + crease * F32(0.15) + tone * F32(0.04) - pebble * F32(0.06)
    return _layers(s, albedo, height, rough, ref=(0.40, 0.24, 0.14), bump=0.004,
                   cavity=np.maximum(crease, wrinkle), edge=pebble * F32(0.6))


def _concrete(s: Strip, p: Params, cells: Cells | None) -> Layers:
    asphalt = p.variant == "asphalt"
    base = rgb((0.19, 0.19, 0.20) if asphalt else (0.58, 0.57, 0.54))
    stain = s.noise("concrete.stain", 4, 5, 0.6)
    grain = s.noise("concrete.grain", s.freq(128), 2)
    stones = smoothstep(0.9, 1.5, s.noise("concrete.aggregate", s.freq(56), 2))
    pores = smoothstep(1.9, 2.6, s.noise("concrete.pores", s.freq(200), 1))
    shade = F32(1) + stain * F32(0.08) + grain * F32(0.05) - pores * F32(0.45)
    albedo = base * shade
    albedo = lerp3(albedo, rgb((0.48, 0.47, 0.45) if asphalt else (0.66, 0.64, 0.60)),
                   stones * F32(0.6))
    height = F32(0.5) + grain * F32(0.04) + stones * F32(0.12) + stain * F32(0.03)
    height -= pores * F32(0.35)
    return _layers(s, albedo, height, F32(0.9 if asphalt else 0.86) + grain * F32(0.03),
                   ref=base, bump=0.006, cavity=pores)


def _plaster(s: Strip, p: Params, cells: Cells | None) -> Layers:
    trowel = s.noise("plaster.trowel", 5, 4, 0.55)
    swirl = noise.ridged(s.noise("plaster.swirl", 3, 3), 3.0)
    grain = s.noise("plaster.grain", s.freq(180), 2)
    base = rgb((0.86, 0.84, 0.80))
    albedo = base * (F32(1) + trowel * F32(0.03) + grain * F32(0.02) - swirl * F32(0.03))
    height = F32(0.5) + trowel * F32(0.1) + swirl * F32(0.06) + grain * F32(0.02)
    return _layers(s, albedo, height, F32(0.82) + trowel * F32(0.04), ref=(0.86, 0.84, 0.80),
                   bump=0.008)


def _sand(s: Strip, p: Params, cells: Cells | None) -> Layers:
    phase = s.v * F32(s.freq(14)) + s.noise("sand.bend", (3, 2), 3) * F32(0.8)
    phase += s.noise("sand.wiggle", (8, 4), 2) * F32(0.15)
    frac = phase - np.floor(phase)
    ripple = np.where(frac < 0.7, frac * F32(1 / 0.7), (F32(1) - frac) * F32(1 / 0.3))
    ripple = ripple * ripple * (F32(3) - F32(2) * ripple)
    grain = s.noise("sand.grain", s.freq(220), 2)
    tone = s.noise("sand.tone", 5, 3)
    base = rgb((0.82, 0.70, 0.50))
    albedo = base * (F32(1) + grain * F32(0.05) + tone * F32(0.05) - ripple * F32(0.04))
    height = F32(0.35) + ripple * F32(0.3) + grain * F32(0.03)
    return _layers(s, albedo, height, F32(0.93) + grain * F32(0.03), ref=(0.82, 0.70, 0.50),
                   bump=0.006)


def _grass(s: Strip, p: Params, cells: Cells | None) -> Layers:
    blades = s.noise("grass.blades", (s.freq(48), s.freq(240)), 2)
    blades += s.noise("grass.blades2", (s.freq(240), s.freq(48)), 2) * F32(0.6)
    patches = s.noise("grass.patch", 4, 4)
    t = np.clip(F32(0.5) + blades * F32(0.22), 0, 1)
    albedo = ramp(t, [(0, (0.08, 0.16, 0.04)), (0.55, (0.22, 0.40, 0.09)), (1, (0.48, 0.60, 0.22))])
    dry = smoothstep(0.6, 1.6, patches)
    albedo = lerp3(albedo, albedo * rgb((1.5, 1.15, 0.7)), dry)
    return _layers(s, albedo, F32(0.5) + blades * F32(0.15), F32(0.72) + blades * F32(0.05),
                   ref=(0.22, 0.40, 0.09), bump=0.004)


def _moss(s: Strip, p: Params, cells: Cells | None) -> Layers:
    clump = s.noise("moss.clump", 8, 5, 0.55)
    fuzz = s.noise("moss.fuzz", s.freq(180), 2)
    layers = _moss_layer(s, clump, fuzz)
    height = F32(0.5) + clump * F32(0.15) + fuzz * F32(0.06)
    return _layers(s, layers, height, F32(0.9) + fuzz * F32(0.04), ref=(0.27, 0.38, 0.11),
                   bump=0.008)


def _moss_layer(s: Strip, clump: np.ndarray, fuzz: np.ndarray,
                tint: Color | None = None) -> np.ndarray:
    t = np.clip(F32(0.5) + clump * F32(0.15) + fuzz * F32(0.2), 0, 1)
    albedo = ramp(t, [(0, (0.10, 0.17, 0.05)), (0.5, (0.27, 0.38, 0.11)), (1, (0.50, 0.56, 0.20))])
    return _tint(albedo, rgb(tint), 0.3, 0.8) if tint else albedo


def _ground(s: Strip, p: Params, cells: Cells | None) -> Layers:
    mud = p.variant == "mud"
    base = s.noise("ground.base", 5, 5, 0.55)
    grain = s.noise("ground.grain", s.freq(160), 2)
    pebbles = smoothstep(1.2, 1.7, s.noise("ground.pebbles", s.freq(40), 2))
    t = np.clip(F32(0.5) + base * F32(0.2) + grain * F32(0.1), 0, 1)
    stops = ([(0, (0.16, 0.12, 0.08)), (1, (0.32, 0.24, 0.16))] if mud
             else [(0, (0.26, 0.19, 0.13)), (0.6, (0.40, 0.30, 0.21)), (1, (0.50, 0.40, 0.29))])
    albedo = lerp3(ramp(t, stops), rgb((0.52, 0.48, 0.42)), pebbles)
    height = F32(0.5) + base * F32(0.12) + grain * F32(0.04) + pebbles * F32(0.15)
    rough = F32(0.92) + grain * F32(0.03) - pebbles * F32(0.1)
    if mud:
        puddle = smoothstep(-0.4, -1.0, base)
        rough = lerp(F32(0.55) + grain * F32(0.06), F32(0.05), puddle)
        height = np.maximum(height, F32(0.5) - F32(0.12 * 0.4))
    return _layers(s, albedo, height, rough, ref=stops[len(stops) // 2][1], bump=0.01)


def _cobble(s: Strip, p: Params, cells: Cells | None) -> Layers:
    pebble = p.variant == "pebble"
    f1, f2, ident = s.cells("cobble", 32 if pebble else 8, 0.85)
    gap = s.noise("cobble.gap", 12, 2) * F32(0.03)
    stone = smoothstep(0.06, 0.22, f2 - f1 + gap)
    dome = F32(1) - np.minimum(f1 * f1 * F32(0.9), F32(1))
    pick = s.table("cobble.pick", s.cell_count(32 if pebble else 8) ** 2)[ident]
    grain = s.noise("cobble.grain", s.freq(140), 2)
    t = np.clip(pick + grain * F32(0.06), 0, 1)
    stones = ramp(t, [(0, (0.36, 0.34, 0.32)), (0.5, (0.52, 0.49, 0.45)), (1, (0.62, 0.58, 0.52))])
    dirt = rgb((0.28, 0.23, 0.18)) * (F32(1) + grain * F32(0.1))
    albedo = lerp3(dirt, stones, stone)
    height = stone * (F32(0.45) + dome * F32(0.4)) + grain * F32(0.03) + F32(0.1)
    rough = lerp(F32(0.95), F32(0.72) + grain * F32(0.05), stone)
    return _layers(s, albedo, height, rough, ref=(0.48, 0.45, 0.42), bump=0.012,
                   cavity=F32(1) - stone, edge=stone * (F32(1) - dome))


def _plastic(s: Strip, p: Params, cells: Cells | None) -> Layers:
    peel = s.noise("plastic.peel", s.freq(64), 2)
    base = rgb((0.82, 0.82, 0.82))
    albedo = base * (F32(1) + peel * F32(0.005))
    return _layers(s, albedo, F32(0.5) + peel * F32(0.04), F32(0.33) + peel * F32(0.02),
                   ref=(0.82, 0.82, 0.82), bump=0.0015)


def _rubber(s: Strip, p: Params, cells: Cells | None) -> Layers:
    grain = s.noise("rubber.grain", s.freq(150), 2)
    tone = s.noise("rubber.tone", 5, 3)
    base = rgb((0.12, 0.12, 0.12))
    albedo = base * (F32(1) + grain * F32(0.06) + tone * F32(0.05))
    return _layers(s, albedo, F32(0.5) + grain * F32(0.1), F32(0.82) + tone * F32(0.04),
                   ref=(0.12, 0.12, 0.12), bump=0.0015)


def _paper(s: Strip, p: Params, cells: Cells | None) -> Layers:
    card = p.variant == "cardboard"
    fibres = s.noise("paper.fibre.x", (s.freq(300), s.freq(40)), 1)
    fibres += s.noise("paper.fibre.y", (s.freq(40), s.freq(300)), 1)
    blotch = s.noise("paper.blotch", 6, 4)
    base = rgb((0.70, 0.55, 0.37) if card else (0.93, 0.91, 0.86))
    albedo = base * (F32(1) + fibres * F32(0.012) + blotch * F32(0.015))
    return _layers(s, albedo, F32(0.5) + fibres * F32(0.04) + blotch * F32(0.05),
                   F32(0.9) + fibres * F32(0.02), ref=base, bump=0.003)


def _ice(s: Strip, p: Params, cells: Cells | None) -> Layers:
    depth = s.noise("ice.depth", 4, 5, 0.55)
    crack = noise.ridged(s.noise("ice.crack", 5, 4, 0.6), 14.0)
    crack2 = noise.ridged(s.noise("ice.crack2", 11, 3, 0.6), 18.0) * F32(0.6)
    cracks = np.maximum(crack, crack2)
    bubbles = smoothstep(2.0, 2.6, s.noise("ice.bubbles", s.freq(120), 1))
    t = np.clip(F32(0.5) + depth * F32(0.25), 0, 1)
    albedo = ramp(t, [(0, (0.50, 0.68, 0.82)), (1, (0.80, 0.89, 0.95))])
    albedo = lerp3(albedo, rgb((0.94, 0.97, 1.0)), np.maximum(cracks * F32(0.8), bubbles))
    height = F32(0.5) + depth * F32(0.05) - cracks * F32(0.2)
    rough = F32(0.05) + cracks * F32(0.3) + bubbles * F32(0.1)
    return _layers(s, albedo, height, rough, ref=(0.66, 0.80, 0.90), bump=0.004, cavity=cracks)


def _lava(s: Strip, p: Params, cells: Cells | None) -> Layers:
    f1, f2, _ = s.cells("lava", 8, 0.9)
    wobble = s.noise("lava.wobble", 10, 3)
    crust_n = s.noise("lava.crust", 16, 4)
    flow = np.clip((f2 - f1) * F32(3.2) + wobble * F32(0.2) - F32(0.15), 0, 1)
    molten = F32(1) - smoothstep(0.0, 0.35, flow)
    heat = np.clip(molten + wobble * F32(0.1), 0, 1)
    hot = ramp(heat, [(0, (0.55, 0.08, 0.02)), (0.6, (0.95, 0.35, 0.04)), (1, (1.0, 0.82, 0.30))])
    crust = rgb((0.09, 0.07, 0.07)) * (F32(1) + crust_n * F32(0.25))
    albedo = lerp3(crust, hot, molten)
    height = F32(0.3) + (F32(1) - molten) * F32(0.5) + crust_n * F32(0.05)
    rough = lerp(F32(0.88) + crust_n * F32(0.05), F32(0.35), molten)
    return _layers(s, albedo, height, rough, ref=(0.09, 0.07, 0.07), bump=0.008, cavity=molten)


def _scales(s: Strip, p: Params, cells: Cells | None) -> Layers:
    cols = s.freq(14)
    rows, radius = 2 * cols, F32(0.64)
    x, y = s.u * F32(cols), s.v * F32(cols)
    r0 = np.floor(y * F32(2)).astype(np.int64)
    best_d = np.full(s.shape, np.inf, F32)
    best_dy = _zeros(s)
    best_id = np.zeros(s.shape, np.int64)
    for r in (r0 + 1, r0, r0 - 1):  # the upper row overlaps, so it is applied last
        shift = F32(0.5) * (r % 2).astype(F32)
        cx = np.floor(x - shift + F32(0.5)) + shift
        dx, dy = x - cx, y - r.astype(F32) * F32(0.5)
        dist = np.sqrt(dx * dx + dy * dy)
        inside = dist < radius
        best_d = np.where(inside, dist, best_d)
        best_dy = np.where(inside, dy, best_dy)
        ident = (r % rows) * cols + (np.floor(cx).astype(np.int64) % cols)
        best_id = np.where(inside, ident, best_id)
    d = np.minimum(best_d / radius, F32(1))
    dome = np.sqrt(F32(1) - d * d)
    lift = np.clip(best_dy / radius, 0, 1)  # the free edge stands proud of the one below
    pick = s.table("scales.pick", rows * cols)[best_id]
    height = F32(0.2) + dome * F32(0.35) + lift * F32(0.35)
    base = rgb((0.35, 0.42, 0.22))
    shade = F32(0.75) + pick * F32(0.3) + dome * F32(0.15) - smoothstep(0.8, 1.0, d) * F32(0.35)
    albedo = base * shade
    rough = F32(0.42) + (F32(1) - dome) * F32(0.15)
    return _layers(s, albedo, height, rough, ref=(0.35, 0.42, 0.22), bump=0.012,
                   cavity=smoothstep(0.8, 1.0, d), edge=lift)


RECIPES: dict[str, Callable[[Strip, Params, Cells | None], Layers]] = {
    "wood": _wood, "metal": _metal, "stone": _stone, "marble": _marble, "granite": _granite,
    "clay": _clay, "ceramic": _ceramic, "fabric": _fabric, "leather": _leather,
    "concrete": _concrete, "plaster": _plaster, "sand": _sand, "grass": _grass, "moss": _moss,
    "ground": _ground, "cobble": _cobble, "plastic": _plastic, "rubber": _rubber,
    "paper": _paper, "ice": _ice, "lava": _lava, "scales": _scales,
}


# --------------------------------------------------------------------------- layouts


def _layout(s: Strip, p: Params) -> Cells | None:
    """Brick (running bond), tile (grid) or plank (random joints) cells for this band."""
    if not p.layout:
        return None
    if p.layout == "brick":
        rows, cols, gap, bevel, jiggle = 2 * s.freq(5), s.freq(4), 0.0055, 0.003, 0.0012
    elif p.layout == "tile":
        rows = cols = s.freq(6)
        gap, bevel, jiggle = 0.0022, 0.0025, 0.0
    else:
        rows, cols, gap, bevel, jiggle = s.freq(7), s.freq(2), 0.0007, 0.0012, 0.0
    u, v = s.u, s.v
    if jiggle:
        u = u + s.noise("layout.jx", 24, 2) * F32(jiggle)
        v = v + s.noise("layout.jy", 24, 2) * F32(jiggle)
    sv = v * F32(rows)
    r = np.floor(sv)
    fv = sv - r
    row = r.astype(np.int32)
    row %= rows
    if p.layout == "brick":
        shift = (row & 1).astype(F32) * F32(0.5)
    elif p.layout == "plank":
        shift = np.take(s.table("layout.shift", rows), row)
    else:
        shift = F32(0.0)
    su = u * F32(cols) + shift
    c = np.floor(su)
    fu = su - c
    col = c.astype(np.int32)
    col %= cols
    cell = row * cols + col
    np.minimum(fu, F32(1) - fu, out=fu)
    fu *= F32(1.0 / cols)
    np.minimum(fv, F32(1) - fv, out=fv)
    fv *= F32(1.0 / rows)
    parity = (row + col) & 1
    pixel = 1.0 / s.res  # joints at least a pixel wide, or they alias into broken lines
    return Cells(rand=np.take(s.table("layout.rand", rows * cols), cell),
                 rand2=np.take(s.table("layout.rand2", rows * cols), cell),
                 parity=np.broadcast_to(parity, s.shape),
                 dist=np.broadcast_to(np.minimum(fu, fv), s.shape),
                 gap=max(gap, 0.6 * pixel), bevel=max(bevel, 1.5 * pixel))


def _apply_layout(s: Strip, p: Params, cells: Cells, layers: Layers) -> None:
    """Per-cell variation on the surface, joints (mortar, grout, seams) between cells."""
    joint = F32(1) - smoothstep(cells.gap, cells.gap + cells.bevel * 0.35, cells.dist)
    face = smoothstep(cells.gap, cells.gap + cells.bevel, cells.dist)
    vary = {"brick": 0.22, "tile": 0.05, "plank": 0.12}[p.layout]
    shade = F32(1) + (cells.rand - F32(0.5)) * F32(vary)
    if p.layout == "brick":
        burnt = smoothstep(0.82, 0.95, cells.rand2)
        shade -= burnt * F32(0.3)
    layers.albedo *= shade
    grit = s.noise("layout.grit", s.freq(140), 2)
    default = {"brick": (0.62, 0.60, 0.56), "tile": (0.58, 0.57, 0.55), "plank": (0.10, 0.07, 0.05)}
    joint_col = rgb(p.attached.get("joint", default[p.layout])) * (F32(1) + grit * F32(0.06))
    layers.albedo = lerp3(layers.albedo, joint_col, joint)
    layers.height = lerp(layers.height * F32(0.3) + face * F32(0.6) + F32(0.1),
                         F32(0.05) + grit * F32(0.03), joint)
    layers.rough = lerp(layers.rough + (cells.rand2 - F32(0.5)) * F32(0.06), F32(0.92), joint)
    layers.metal *= F32(1) - joint
    layers.cavity = np.maximum(layers.cavity, joint)
    layers.edge = np.maximum(layers.edge * F32(0.5), (F32(1) - face) * (F32(1) - joint))
    layers.bump = max(layers.bump, {"brick": 0.007, "tile": 0.003, "plank": 0.002}[p.layout])


# --------------------------------------------------------------------------- modifiers


def _apply_colors(s: Strip, p: Params, cells: Cells | None, layers: Layers) -> None:
    """Colour words recolour the surface; two colours alternate over tiles or cells."""
    if "light" in p.mods or "dark" in p.mods:
        _brightness(layers, p)
    if layers.tinted or not p.colors or "painted" in p.mods:
        return
    strength = {"clay": 0.45, "wood": 0.65, "metal": 0.9}.get(p.material, 0.88)
    if len(p.colors) > 1 and cells is not None:
        table = np.asarray(p.colors, F32)
        if p.layout == "tile":
            pick = cells.parity % len(table)
        else:
            pick = np.minimum((cells.rand2 * len(table)).astype(np.int64), len(table) - 1)
        layers.albedo = _tint(layers.albedo, table.T[:, pick], layers.ref, strength)
    else:
        layers.albedo = _tint(layers.albedo, rgb(p.colors[0]), layers.ref, strength)


def _brightness(layers: Layers, p: Params) -> None:
    if "dark" in p.mods:
        layers.albedo *= F32(0.55 ** p.mods["dark"])
    if "light" in p.mods:
        keep = F32(0.55 ** p.mods["light"])
        layers.albedo = F32(1) - (F32(1) - layers.albedo) * keep


def _paint(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    color = p.attached.get("paint") or (p.colors[0] if p.colors else (0.22, 0.36, 0.50))
    wear = p.amount("worn") + 0.5 * p.amount("scratched")
    chips_field = s.noise("paint.chips", 10, 3, 0.5) * F32(0.6)
    chips_field += s.noise("paint.flakes", 40, 3, 0.6) * F32(0.6) + layers.edge * F32(0.8)
    chips = coverage(chips_field, 0.02 + 0.1 * wear, 0.08) if wear else _zeros(s)
    cover = F32(1) - chips
    tone = s.noise("paint.tone", 6, 3)
    paint = rgb(color) * (F32(1) + tone * F32(0.03))
    layers.albedo = lerp3(layers.albedo, paint, cover)
    layers.rough = lerp(layers.rough, F32(0.42) + tone * F32(0.04), cover)
    layers.metal *= chips
    layers.height += cover * F32(0.3)  # chipped edges show as a step in the normal map
    layers.edge = np.maximum(layers.edge, chips)
    layers.bump = max(layers.bump, 0.004)


def _rust(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    field_ = (s.noise("rust.blotch", 5, 5, 0.6) + layers.cavity * F32(1.0)
              + layers.edge * F32(0.5) + s.noise("rust.streak", (3, 40), 2) * F32(0.3))
    mask = coverage(field_, 0.35 * amount, 0.35)
    tone = s.noise("rust.tone", 20, 3)
    flake = s.noise("rust.flake", s.freq(72), 2)
    t = np.clip(F32(0.5) + tone * F32(0.3) + flake * F32(0.1), 0, 1)
    color = ramp(t, [(0, (0.22, 0.10, 0.05)), (0.45, (0.45, 0.20, 0.08)), (1, (0.68, 0.36, 0.14))])
    if "rust" in p.attached:
        color = _tint(color, rgb(p.attached["rust"]), 0.3, 0.8)
    layers.albedo = lerp3(layers.albedo, color, mask)
    layers.rough = lerp(layers.rough, F32(0.86) + flake * F32(0.05), mask)
    layers.metal *= F32(1) - mask
    layers.height += mask * (F32(0.06) + flake * F32(0.04))
    layers.cavity = np.maximum(layers.cavity, mask * F32(0.5))
    layers.bump = max(layers.bump, 0.006)


def _patina(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    drips = np.maximum(s.noise("patina.drip", (3, 30), 3), 0) * F32(0.35)
    field_ = (s.noise("patina.blotch", 5, 5, 0.6) + layers.cavity * F32(1.2) + drips
              - layers.edge * F32(0.4))
    mask = coverage(field_, 0.4 * amount, 0.3)
    tone = s.noise("patina.tone", 24, 3)
    t = np.clip(F32(0.5) + tone * F32(0.3), 0, 1)
    color = ramp(t, [(0, (0.22, 0.46, 0.38)), (0.5, (0.36, 0.62, 0.52)), (1, (0.58, 0.78, 0.70))])
    if "patina" in p.attached:
        color = _tint(color, rgb(p.attached["patina"]), 0.55, 0.35)
    layers.albedo = lerp3(layers.albedo, color, mask)
    layers.rough = lerp(layers.rough, F32(0.8) + tone * F32(0.05), mask)
    layers.metal *= F32(1) - mask
    layers.height += mask * (F32(0.04) + tone * F32(0.015))
    layers.bump = max(layers.bump, 0.004)


def _mossy(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    clump = s.noise("mossy.clump", 6, 5, 0.55)
    fuzz = s.noise("moss.fuzz", s.freq(180), 2)
    mask = coverage(clump + layers.cavity * F32(1.3) + fuzz * F32(0.15), 0.35 * amount, 0.3)
    layers.albedo = lerp3(layers.albedo, _moss_layer(s, clump, fuzz, p.attached.get("moss")), mask)
    layers.rough = lerp(layers.rough, F32(0.92), mask)
    layers.metal *= F32(1) - mask
    layers.height += mask * (F32(0.08) + fuzz * F32(0.04))


def _dirt(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    blotch = s.noise("dirt.blotch", 4, 5, 0.6)
    grime = np.clip(layers.cavity * F32(0.9) + np.maximum(blotch, 0) * F32(0.35), 0, 1)
    grime *= F32(min(amount, 2.0) * 0.6)
    layers.albedo = lerp3(layers.albedo, rgb((0.20, 0.17, 0.13)), grime)
    layers.rough = lerp(layers.rough, F32(0.92), grime)
    layers.metal *= F32(1) - grime * F32(0.7)


def _worn(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    blotch = s.noise("worn.blotch", 7, 5, 0.6)
    layers.albedo *= (F32(1) + blotch * F32(0.07 * amount))
    rubbed = coverage(s.noise("worn.rub", 12, 4) + layers.edge * F32(1.5), 0.15 * amount, 0.3)
    # rubbed edges go smooth on metal, pale and rough on everything else
    layers.rough = lerp(layers.rough + np.abs(blotch) * F32(0.1 * amount),
                        np.where(layers.metal > 0.5, F32(0.2), F32(0.9)), rubbed * F32(0.7))
    layers.albedo = lerp3(layers.albedo, layers.albedo * F32(1.15) + F32(0.03), rubbed * F32(0.5))
    _dirt(s, p, layers, 0.5 * amount)


def _cracked(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    f1, f2, _ = s.cells("crack", 8, 0.9)
    width = F32(0.05) * (F32(0.6) + F32(0.4) * np.clip(s.noise("crack.width", 14, 2), -1, 1))
    crack = F32(1) - smoothstep(0.0, 1.0, (f2 - f1) / width)
    crack *= smoothstep(-0.6, 0.2, s.noise("crack.fade", 4, 3)) * F32(min(amount, 1.5))
    color = rgb(p.attached["crack"]) if "crack" in p.attached else layers.albedo * F32(0.35)
    layers.albedo = lerp3(layers.albedo, color, crack)
    layers.height -= crack * F32(0.35)
    layers.rough = np.maximum(layers.rough, crack * F32(0.95))
    layers.cavity = np.maximum(layers.cavity, crack)
    layers.bump = max(layers.bump, 0.004)


def _scratched(s: Strip, p: Params, layers: Layers, amount: float) -> None:
    scratches = _zeros(s)
    for k, (a, b) in enumerate(((1, 3), (3, -1), (1, -2), (2, 1))):
        line = noise.ridged(s.lines(f"scratch.{k}", s.freq(400), a, b), 40.0)
        segment = smoothstep(0.6, 1.4, s.noise(f"scratch.seg{k}", 10, 2))
        np.maximum(scratches, line * segment, out=scratches)
    scratches *= F32(min(amount, 1.5))
    metal = layers.metal > 0.5
    scuffed = np.where(metal, layers.rough + F32(0.25), F32(0.9))
    layers.rough = lerp(layers.rough, scuffed, scratches)
    layers.albedo = lerp3(layers.albedo, layers.albedo * F32(1.2) + F32(0.05), scratches * F32(0.6))
    layers.height -= scratches * F32(0.05)


def _surface_finish(p: Params, layers: Layers) -> None:
    """Finish words adjust roughness and relief last, so they win over everything above."""
    if "wet" in p.mods:
        dry = layers.metal
        keep = F32(0.65) + F32(0.35) * dry
        layers.albedo *= keep
        layers.rough = lerp(layers.rough * F32(0.35), layers.rough, dry)
    if "polished" in p.mods:
        layers.rough *= F32(0.38 ** p.mods["polished"])
        layers.bump *= 0.7
    if "matte" in p.mods:
        layers.rough = np.maximum(layers.rough, F32(0.6)) + F32(0.1)
    if "rough" in p.mods:
        layers.rough += (F32(1) - layers.rough) * F32(0.5)
        layers.bump *= 1.5
    if "smooth" in p.mods:
        layers.rough *= F32(0.8)
        layers.bump *= 0.5


_MODIFIER_ORDER: list[tuple[str, Callable[[Strip, Params, Layers, float], None]]] = [
    ("painted", _paint), ("rusty", _rust), ("patina", _patina), ("cracked", _cracked),
    ("scratched", _scratched), ("mossy", _mossy), ("dirty", _dirt), ("worn", _worn),
]


def build_band(s: Strip, p: Params) -> Layers:
    """The whole material for one band of rows: recipe, layout, colours, then modifiers."""
    cells = _layout(s, p)
    layers = RECIPES.get(p.material, _plaster)(s, p, cells)
    if "hammered" in p.mods:
        _hammered(s, layers, p.mods["hammered"])
    _apply_colors(s, p, cells, layers)
    if cells is not None:
        _apply_layout(s, p, cells, layers)
    for mod, apply in _MODIFIER_ORDER:
        if mod in p.mods:
            apply(s, p, layers, p.mods[mod])
    _surface_finish(p, layers)
    return layers


# --------------------------------------------------------------------------- generation

_WORKERS = max(1, min(2, os.cpu_count() or 1))
MAX_RESOLUTION = 8192
_BAND_PIXELS = 1 << 18


def _to_u8(values: np.ndarray, out: np.ndarray) -> None:
    scaled = values * F32(255.0)
    scaled += F32(0.5)
    np.clip(scaled, 0.0, 255.0, out=scaled)
    out[...] = scaled


def generate_maps(
    prompt: str,
    seed: int,
    resolution: int,
    negative_prompt: str = "",
    *,
    roles: Iterable[str] | None = None,
    on_step: StepFn | None = None,
) -> dict[str, np.ndarray]:
    """All maps of the prompt's material as arrays (row 0 = top), without touching files.

    base_color HxWx3 uint8 sRGB, roughness/metallic HxW uint8, normal HxWx3 uint8 (OpenGL),
    height HxW uint16. `on_step(fraction, message)` is called between bands on the calling
    thread; raising from it (a cancel) stops the work.
    """
    res = int(resolution)
    if not 8 <= res <= MAX_RESOLUTION:  # 8192 already needs ~1.3 GB at its peak
        raise ValueError(f"resolution must be between 8 and {MAX_RESOLUTION}, not {resolution}")
    wanted = set(roles) if roles is not None else set(MAP_ROLES)
    params = parse_prompt(prompt, negative_prompt)
    step = on_step or (lambda _f, _m: None)
    bank = Bank(res, int(seed), params.scale)
    rows = max(8, min(res, _BAND_PIXELS // res))
    bands = [(r0, min(res, r0 + rows)) for r0 in range(0, res, rows)]
    base = np.empty((res, res, 3), np.uint8)
    rough = np.empty((res, res), np.uint8)
    metal = np.empty((res, res), np.uint8)
    height = np.empty((res, res), F32)
    bumps: list[float] = []

    def material_band(r0: int, r1: int) -> None:
        layers = build_band(Strip(bank, r0, r1), params)
        for channel in range(3):
            _to_u8(layers.albedo[channel], base[r0:r1, :, channel])
        _to_u8(layers.rough, rough[r0:r1])
        _to_u8(layers.metal, metal[r0:r1])
        height[r0:r1] = layers.height
        if r0 == 0:
            bumps.append(layers.bump)

    label = params.variant if params.material in ("metal", "wood") else params.material
    _run_bands(material_band, bands, step, 0.0, 0.8, f"generating {label}")
    maps: dict[str, np.ndarray] = {BASE_COLOR: base, ROUGHNESS: rough, METALLIC: metal}
    if wanted & {NORMAL, HEIGHT}:
        lo, hi = float(height.min()), float(height.max())
        height16 = np.empty((res, res), np.uint16)
        normal = np.empty((res, res, 3), np.uint8)
        span = F32(65535.0 / (hi - lo)) if hi > lo else F32(0.0)

        def relief_band(r0: int, r1: int) -> None:
            normal[r0:r1] = noise.normal_rows(height, r0, r1, bumps[0])
            scaled = (height[r0:r1] - F32(lo)) * span
            scaled += F32(0.5 if hi > lo else 32768.0)
            height16[r0:r1] = scaled

        _run_bands(relief_band, bands, step, 0.8, 1.0, "computing normal and height")
        maps[NORMAL], maps[HEIGHT] = normal, height16
    return {role: arr for role, arr in maps.items() if role in wanted}


def _run_bands(work: Callable[[int, int], None], bands: list[tuple[int, int]], step: StepFn,
               start: float, end: float, message: str) -> None:
    """Run the first band alone (it builds the shared fields), the rest on worker threads."""
    step(start, message)
    work(*bands[0])
    if len(bands) == 1 or _WORKERS == 1:
        for i, band in enumerate(bands[1:], 2):
            step(start + (end - start) * i / len(bands), message)
            work(*band)
        return
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        futures: list[Future[None]] = [pool.submit(work, *band) for band in bands[1:]]
        try:
            for i, fut in enumerate(futures, 2):
                fut.result()
                step(start + (end - start) * i / len(bands), message)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


# --------------------------------------------------------------------------- provider


class ProceduralProvider(Provider):
    """Built-in offline provider: nothing leaves the machine, no key, no cost."""

    id = "PROCEDURAL"
    label = "Offline (procedural)"
    description = "Built in: seamless PBR maps from the prompt's words; no account, no network"
    offline = True
    mesh_format = ""
    # One job at a time: each already spreads its bands over the cores, and Blender's main
    # thread needs a core of its own to stay smooth while a batch generates.
    max_concurrency = 1
    poll_interval = 0.0
    resubmit_safe = True

    def submit(self, request: TextureRequest, cancel: CancelToken) -> str:
        key = json.dumps([request.prompt, request.negative_prompt, request.seed,
                          request.resolution, request.enable_pbr])
        return "local-" + hashlib.sha1(key.encode()).hexdigest()[:12]

    def poll(self, remote_id: str, request: TextureRequest, cancel: CancelToken) -> RemoteStatus:
        roles = MAP_ROLES if request.enable_pbr else (BASE_COLOR,)
        return RemoteStatus(RemoteState.SUCCEEDED, progress=1.0,
                            maps={role: "procedural:" + role for role in roles})

    def fetch(self, remote_id: str, status: RemoteStatus, request: TextureRequest,
              cancel: CancelToken, progress: ProgressFn) -> dict[str, str]:
        cancel.check()
        roles = MAP_ROLES if request.enable_pbr else (BASE_COLOR,)
        if not request.out_dir:
            raise ProviderError("No texture folder is set: choose one in the add-on preferences.")

        def step(fraction: float, message: str) -> None:
            cancel.check()
            progress(0.85 * fraction, message)

        try:
            maps = generate_maps(request.prompt, request.seed, request.resolution,
                                 request.negative_prompt, roles=roles, on_step=step)
        except ValueError as exc:
            raise ProviderError(f"Offline textures: {exc}.") from None
        stem = request.file_stem or request.job_id or "texture"
        try:
            os.makedirs(request.out_dir, exist_ok=True)
            paths = {}
            for i, role in enumerate(roles):
                cancel.check()
                progress(0.85 + 0.15 * i / len(roles), f"saving {role.replace('_', ' ')} map")
                path = os.path.join(request.out_dir, f"{stem}_{role}.png")
                imagefile.write_png(path, maps[role])
                paths[role] = path
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ProviderError(
                f"Could not write textures to {request.out_dir}: {reason}.") from None
        progress(1.0, "done")
        return paths
