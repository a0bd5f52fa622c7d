"""``python -m raybench.cli``: the command line."""

from raybench.cli import main

main()
