"""Kept for the seed's path: the login package is `app.services.tiktok.login`."""
