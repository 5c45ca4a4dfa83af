"""winserve: serve a trained model to colleagues from a desktop, over a web page and a JSON API."""

__version__ = "0.1.0"
