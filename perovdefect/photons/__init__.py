"""Photon statistics of single nanocrystals from time-tagged TCSPC data."""
