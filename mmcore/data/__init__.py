"""Readers for third-party market-data formats (Tardis.dev CSV: :mod:`mmcore.data.tardis`)."""
