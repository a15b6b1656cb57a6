"""asyncpg's array parameters, checked by their concrete types.

Before asyncpg (0.32, ``protocol/codecs/array.pyx``) encodes an array parameter, it asks of
the array and of every element whether it is itself an array: ``isinstance(x, Iterable)``
and ``isinstance(x, Sized)`` (and not a ``Mapping``), against the ``collections.abc``
classes. Each such check calls ``ABCMeta.__instancecheck__``, a Python function; a string
element takes two. A batch of 100 records sends 400 to 650 array elements (key values,
lock ids, record ids, written columns, the records' JSON), and those checks were 7–14 % of
everything the worker did for it (``python -m bench.instructions``, as it counted then:
the mix 132.0k instructions per record, 116.6k without them; inserts 96.7k and 83.6k;
update_ext 125.1k and 116.0k).

crmlite passes its arrays as lists, and nothing else in the server process talks to
asyncpg, so :func:`check_arrays_by_type` has asyncpg ask the concrete type instead: a
list is an array (a list inside one, a dimension), a dict a mapping. Any other iterable,
a tuple included, is no longer taken for an array parameter (asyncpg then raises its
``TypeError``, "a sized iterable container expected"): pass a list. (A list alone rather
than a list or a tuple: 1.6 % fewer instructions again on the mix, the checks then being
one type comparison each.)
"""

from __future__ import annotations

import logging

log = logging.getLogger("crmlite.store")

_CHECKED_IN = "0.32."  # the asyncpg whose codecs/array.pyx this was read against
# The names asyncpg's compiled protocol module looks up, at every check, among its globals.
_BY_TYPE: dict[str, type] = {
    "IterableABC": list,
    "SizedABC": list,
    "MappingABC": dict,
}


def check_arrays_by_type() -> bool:
    """Have asyncpg tell arrays by their type (see the module's docstring), for the whole
    process; True again when it already does; False (and nothing changed) under another
    asyncpg than the 0.32 pinned in pyproject.toml, whose checks may differ."""
    import asyncpg
    from asyncpg.protocol import protocol

    if not asyncpg.__version__.startswith(_CHECKED_IN) or not all(
            hasattr(protocol, name) for name in _BY_TYPE):
        log.debug("asyncpg %s: its array checks left as they are", asyncpg.__version__)
        return False
    for name, checked in _BY_TYPE.items():
        setattr(protocol, name, checked)
    return True
