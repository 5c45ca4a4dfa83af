"""Scoring whole files in the background: CSV and Excel uploads, chunk by chunk."""
