"""Render every screen of the demo to SVG for the README: `python scripts/screenshots.py`.

The data is the reproducible demo world (badgetui/demo_world.py), built in a temporary
directory that is also the working directory, so the status line shows `db demo.db` and two
runs write identical files (`--out` to another directory and diff to check). Each picture is
one stop of the tour (badgetui/tui/tour.py) on a fresh console at 120×36.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from badgetui.demo_world import DemoWorld, build_world
from badgetui.tui.tour import SIZE, STOPS, arrive, tour_app

ROOT = Path(__file__).resolve().parent.parent


async def shoot(world: DemoWorld, name: str, out: Path) -> Path:
    """One stop on a fresh console, saved as `<name>.svg`."""
    app = tour_app(world)
    async with app.run_test(size=SIZE) as pilot:
        await arrive(pilot, world, name)
        return Path(app.save_screenshot(f"{name}.svg", str(out)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots",
                        help="directory for the SVG files (default: screenshots/)")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"only these pictures (of: {', '.join(STOPS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(STOPS))
    if unknown:
        parser.error(f"unknown picture {', '.join(unknown)}")
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in STOPS if not args.names or n in args.names]
    here = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="badgetui-shots-") as work:
        os.chdir(work)  # the database path is relative: the status line never varies
        try:
            world = build_world(Path(work))
            try:
                for name in names:
                    print(asyncio.run(shoot(world, name, out)))
            finally:
                world.close()
        finally:
            os.chdir(here)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
