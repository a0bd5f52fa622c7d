"""One module per CLI command; each exposes a click command named ``command``.

Commands only parse, build config objects, call the engine, print the lines it returns and choose
the exit code. :mod:`raybench.cli` loads them lazily so ``raybench --help`` imports neither Ray nor
pyarrow.
"""
