"""realtime_nb: the OpenAI Realtime API as a first-class citizen of Jupyter."""

__version__ = "0.1.0"
