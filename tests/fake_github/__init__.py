"""A local HTTP server that plays GitHub's REST API for the calls the platform makes (the
documented JSON, errors, ``Link`` pagination and rate-limit headers); ``server.FakeGitHub``."""
