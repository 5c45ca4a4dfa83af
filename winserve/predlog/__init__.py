"""The prediction log (issue 26): every prediction request, kept in an SQLite file written off
the web process. ``record`` turns a request into plain values (on the request thread);
``writer`` holds the bounded queue, the thread that sends it on and the writer process's life;
``process`` is that process (SQLite, JSON, pruning); ``store`` the schema, the writes and the
pruning; ``export`` reads it back as CSV."""
