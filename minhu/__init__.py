"""Minhu (民呼) application: configuration, the command line, and wiring of the ticket domain to its edges."""
