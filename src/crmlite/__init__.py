"""crmlite: a self-hosted server that speaks Zoho CRM's REST records API."""

__version__ = "0.1.0"


def compiled() -> bool:
    """Whether the engine's per-record modules run as C compiled by mypyc (setup.py)
    rather than as Python (``CRMLITE_COMPILE=0``, or no C compiler at install time)."""
    from crmlite.records import writer

    return not writer.__file__.endswith(".py")
