"""Zoho's official Python SDKs against crmlite: the driver and what the tests need to run it."""
