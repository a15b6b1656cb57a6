"""crmlite: a self-hosted server that speaks Zoho CRM's REST records API."""

__version__ = "0.1.0"
