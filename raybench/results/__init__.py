"""Result files: the Arrow schema, row recording, the run folder store, per-window statistics, export."""
