"""realtime_nb.server."""
