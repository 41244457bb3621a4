"""realtime_nb.widgets."""
