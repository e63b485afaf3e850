"""The prompt's vocabulary: colour, material, layout, modifier, intensity and size words, and
`parse_prompt`, which reads a prompt into `Params`.

Plain tables and string handling, no arrays: everything downstream (recipes, layouts,
modifiers) reads the prompt only through `Params`, so the words it understands live here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

Color = tuple[float, float, float]

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
# base colour (F0-ish, sRGB) and roughness of the metal recipe; here because a metal word can
# also colour something else ("gold veins")
METALS: dict[str, tuple[Color, float]] = {
    "steel": ((0.78, 0.79, 0.80), 0.32), "iron": ((0.62, 0.62, 0.63), 0.48),
    "aluminium": ((0.91, 0.92, 0.93), 0.30), "chrome": ((0.80, 0.81, 0.83), 0.06),
    "titanium": ((0.76, 0.73, 0.69), 0.34), "gold": ((1.00, 0.80, 0.42), 0.22),
    "silver": ((0.96, 0.95, 0.92), 0.18), "copper": ((0.93, 0.60, 0.42), 0.28),
    "bronze": ((0.80, 0.58, 0.36), 0.36), "brass": ((0.92, 0.78, 0.44), 0.28),
}

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
            p.attached[target] = COLORS.get(color) or METALS[color][0]
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
