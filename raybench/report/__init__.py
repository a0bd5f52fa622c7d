"""The self-contained HTML report: data, HTML primitives, plots, single-run and comparison documents."""
