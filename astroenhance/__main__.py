"""``python -m astroenhance`` (and ``torchrun -m astroenhance train ...``) runs the command-line tool."""

from .cli import main

main()
