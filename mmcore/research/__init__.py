"""Research experiments run with the compiled quoters (``python -m mmcore research ...``)."""
