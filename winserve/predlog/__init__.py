"""The prediction log (issue 26): every prediction request, kept in an SQLite file written off
the request path. ``store`` holds the schema, the writes and the pruning; ``writer`` the queue
and the thread; ``export`` reads it back as CSV."""
