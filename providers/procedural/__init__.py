"""The offline provider's package: seamless PBR maps made from the prompt's words, with no
network and no key.

The prompt is read as a material (wood, brick, gold, ...), an optional layout (bricks, tiles,
planks), colours and modifiers (worn, polished, wet, rusty, with green patina, ...). Each
material is a recipe of periodic noise and periodic coordinates, so every map tiles exactly
and looks the same at any resolution. The texture is evaluated in bands of rows on two threads:
each band's temporaries stay small and in cache, which keeps 4096 maps fast and lean.

From words to pixels: `vocabulary` (prompt -> `Params`), `noise` and `fields` (periodic fields
and the band they are read for), `recipes` and `natural` (one recipe per material), `layouts`
(bricks, tiles, planks), `modifiers` (wear, rust, paint, finish, ... and `build_band`),
`generate` (`generate_maps`: bands on threads -> arrays), `provider` (`ProceduralProvider`:
arrays -> PNG files for the job runner).
"""

from .generate import MAX_RESOLUTION, generate_maps
from .provider import ProceduralProvider
from .vocabulary import Params, parse_prompt

__all__ = ["MAX_RESOLUTION", "Params", "ProceduralProvider", "generate_maps", "parse_prompt"]
