"""Writes hepad_example_dataset/blobs.csv, the example dataset's shipped sample (run once; the file is committed).

Known distributions, so that every number about the data can be checked by hand:
background: 2000 events of a 4-d standard normal; signal ``shifted``: 200 events of the
same shifted by +2.5 in every coordinate; signal ``wide``: 200 events of a 4-d normal of
width 3 around zero.
"""

from pathlib import Path

import numpy as np

SEED = 20240501
FEATURES = ["f0", "f1", "f2", "f3"]


def main() -> None:
    rng = np.random.default_rng(SEED)
    parts = [
        ("background", rng.normal(0.0, 1.0, size=(2000, 4))),
        ("shifted", rng.normal(2.5, 1.0, size=(200, 4))),
        ("wide", rng.normal(0.0, 3.0, size=(200, 4))),
    ]
    lines = [",".join([*FEATURES, "class"])]
    for name, x in parts:
        lines += [",".join(f"{v:.5f}" for v in row) + f",{name}" for row in x]
    out = Path(__file__).parent / "hepad_example_dataset" / "blobs.csv"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
