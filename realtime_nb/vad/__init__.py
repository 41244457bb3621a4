"""realtime_nb.vad."""
