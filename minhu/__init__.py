"""Minhu (民呼) command line and process start-up: the `minhu` commands, the local Rasa stack, the terminal chat
and the deadline sweeper. Above the edges: imports an edge only where it starts it."""
