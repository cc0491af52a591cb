"""Prints the size of each function `sam build` produced, zipped as `sam deploy` uploads it.

Usage: python infra/zipped_sizes.py .aws-sam/build

Lambda's limits for a .zip deployment: 50 MB zipped (direct upload), 250 MB unzipped.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path


def zipped_size(directory: Path) -> tuple[int, int]:
    """(unzipped, zipped) bytes of every file under `directory`, deflated as SAM does."""
    buffer = io.BytesIO()
    unzipped = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(directory))
            unzipped += path.stat().st_size
    return unzipped, buffer.tell()


def main(argv: list[str]) -> int:
    build_dir = Path(argv[1] if len(argv) > 1 else ".aws-sam/build")
    functions = sorted(d for d in build_dir.iterdir() if d.is_dir() and (d / "bootstrap").is_file()) if build_dir.is_dir() else []
    if not functions:
        print(f"no built functions (a bootstrap) under {build_dir}: run sam build first", file=sys.stderr)
        return 1
    print(f"{'function':<24} {'unzipped':>12} {'zipped':>12}")
    for directory in functions:
        unzipped, zipped = zipped_size(directory)
        print(f"{directory.name:<24} {unzipped / 1e6:>9.1f} MB {zipped / 1e6:>9.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
