"""Authentication of people: passwords, sign-in sessions, CSRF tokens, sign-in throttling.

This is the one domain package under ``app/`` (the brief puts "auth of people" here). It
keeps the house shape: models, repository (all its queries), service (no commits).
"""
