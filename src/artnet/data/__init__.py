"""From annotation files and videos on disk to batches of clips."""
