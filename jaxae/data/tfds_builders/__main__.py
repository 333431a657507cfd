"""Command line: build one jaxae TFDS dataset (array_record, no TensorFlow).

  python -m jaxae.data.tfds_builders movielens_ratings --config 100k \\
      --manual_dir ~/data/ml-100k --data_dir gs://my-bucket/tfds
"""

from __future__ import annotations

import argparse
import sys

from jaxae.data import tfds_builders
from jaxae.errors import JaxaeError


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxae.data.tfds_builders",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("name", choices=sorted(tfds_builders.BUILDERS))
  parser.add_argument("--manual_dir", required=True,
                      help="folder holding the files you downloaded (see the builder's docs)")
  parser.add_argument("--data_dir", required=True,
                      help="where to write the dataset (a local folder or gs://bucket/path)")
  parser.add_argument("--config", default=None,
                      help="builder config (movielens_ratings: 100k, 1m or 20m)")
  parser.add_argument("--overwrite", action="store_true",
                      help="rebuild even if the dataset is already there")
  args = parser.parse_args(argv)
  try:
    out = tfds_builders.build(args.name, manual_dir=args.manual_dir, data_dir=args.data_dir,
                              config=args.config, overwrite=args.overwrite)
  except JaxaeError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
