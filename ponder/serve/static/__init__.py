"""The playground page's files (HTML, ES modules, CSS), shipped as package data; served by `serve/playground.py`."""
