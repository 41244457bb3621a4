"""realtime_nb.server.engines."""
