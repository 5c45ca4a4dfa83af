"""The models served (issue 23): ``registry`` (names → versions: acquire/release, swap, drain,
unload), ``folder`` (where models come from: a folder, one file as a folder of one, a factory
or the demo; the watcher), ``loader`` (private copy, spec, backend, sample prediction),
``slots`` (the live records), ``status`` (frozen snapshots for the pages)."""
