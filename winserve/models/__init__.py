"""The models served (issue 23): ``registry`` (names → versions: acquire/release, unload),
``startup`` (when each name loads: at start, and as the watcher finds files), ``folder``
(where models come from: a folder, one file as a folder of one, a factory or the demo; the
watcher), ``swap`` (a name's next version: loaded, swapped in, or why not), ``loader``
(private copy, spec, backend, sample prediction), ``drain`` (a version's end: drained,
stopped, kept for its CSV results), ``slots`` (the live records), ``status`` (frozen
snapshots for the pages)."""
