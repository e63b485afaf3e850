"""Run an emulator by hand: ``python -m tests.emulators meshy [--port 8765] [--job-seconds 20]``.

Prints the base URL and the environment variables that point the extension at it, then serves
until Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from . import EMULATORS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators")
    parser.add_argument("provider", choices=sorted(EMULATORS))
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--job-seconds", type=float, default=15.0)
    parser.add_argument("--pending-seconds", type=float, default=2.0)
    parser.add_argument("--key", default=None, help="API key the emulator accepts")
    parser.add_argument("--map-size", type=int, default=256)
    args = parser.parse_args(argv)

    module, cls_name = EMULATORS[args.provider]
    cls = getattr(importlib.import_module(f".{module}", __package__), cls_name)
    emu = cls(api_key=args.key, job_seconds=args.job_seconds,
              pending_seconds=args.pending_seconds, map_size=args.map_size, port=args.port)
    emu.start()
    print(f"{cls_name} listening on {emu.url}")
    print(f"export {emu.env_prefix}_API_BASE={emu.url}")
    print(f"export {emu.env_prefix}_API_KEY={emu.api_key}")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
