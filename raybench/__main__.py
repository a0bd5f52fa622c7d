"""``python -m raybench``: the command line."""

from raybench.cli import main

main()
