"""``python -m autocompress``: the same CLI as the ``autocompress`` command."""
import sys

from autocompress.cli import main

if __name__ == "__main__":
    sys.exit(main())
