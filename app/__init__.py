"""What every Minhu process shares, below the edges and above the domain: the settings and the wiring that
builds the ticket service from them. Imports nothing of the edges (bot/, actions/, dashboard/) or of the
command line (minhu/)."""
