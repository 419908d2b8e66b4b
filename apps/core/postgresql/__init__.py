"""Django's PostgreSQL backend, failing fast while its pool finds the database unavailable
(see ``base.DatabaseWrapper``)."""
