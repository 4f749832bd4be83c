"""Rasa NLU assets (training data, jieba dictionaries, custom components).

Importable as a package so Rasa (run from the repo root) can load
``nlu.components.<module>.<Class>`` from config.yml. Nothing here is imported by the app.
"""
