"""Wire formats. Each module decodes its requests into a ``PredictRequest``, encodes answers and
renders errors in its own shape; all of them share ``winserve.service``."""
