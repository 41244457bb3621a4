"""realtime_nb.lab."""
