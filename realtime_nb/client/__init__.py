"""realtime_nb.client."""
