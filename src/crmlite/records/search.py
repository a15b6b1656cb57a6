"""Search records: Zoho's ``criteria`` grammar, and the ``email``, ``phone`` and ``word`` searches.

Grammar (zoho-crm-api.md §3.6)::

    criteria  := condition | expr              (a lone condition may go without parentheses)
    expr      := term (("and" | "or") term)*   ("and" binds tighter than "or")
    term      := "(" condition ")" | "(" expr ")"
    condition := api_name ":" operator ":" value

In a value, ``\\(``, ``\\)``, ``\\,`` and ``\\\\`` stand for ``(``, ``)``, ``,`` and ``\\``;
``in`` and ``between`` split their value on unescaped commas. As Zoho documents it,
``equals`` on a text field matches values that *contain* the given text; text matches
ignore case.

Nothing of a criteria reaches the SQL text: field paths and values are bound as
parameters, operators and columns come from fixed tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crmlite.auth.principal import Principal
from crmlite.errors import RequestError
from crmlite.records import reader
from crmlite.records.stored import RECORD_COLUMNS, stored_record
from crmlite.schema.datatypes import key_of, record_id
from crmlite.schema.dictionary import Field, Module
from crmlite.store.base import Store

MAX_CONDITIONS = 10
MAX_DEPTH = 24  # nested parentheses (ten conditions never need more)
MAX_IN_VALUES = 100
MAX_RESULTS = 2000
MIN_WORD = 2

STRING_TYPES = frozenset({"text", "email", "phone", "website"})
NUMBER_TYPES = frozenset({"integer", "bigint", "double", "currency", "percent"})
ORDERED = ("equals", "not_equal", "greater_equal", "greater_than", "less_equal", "less_than",
           "between", "in")
OPERATORS: dict[str, tuple[str, ...]] = {
    **{t: ("equals", "not_equal", "starts_with", "in") for t in STRING_TYPES},
    "textarea": ("equals", "not_equal", "starts_with"),
    "picklist": ("equals", "not_equal", "in"),
    "autonumber": ("equals", "not_equal", "in"),
    "multiselectpicklist": ("equals", "not_equal", "in", "starts_with"),
    "boolean": ("equals", "not_equal"),
    "lookup": ("equals", "not_equal", "in"),
    "ownerlookup": ("equals", "not_equal", "in"),
    "userlookup": ("equals", "not_equal", "in"),
    "date": ORDERED,
    "datetime": ORDERED,
    **{t: ORDERED for t in NUMBER_TYPES},
}
KNOWN_OPERATORS = frozenset(op for ops in OPERATORS.values() for op in ops)
COMPARE = {"greater_equal": ">=", "greater_than": ">", "less_equal": "<=", "less_than": "<"}
# Fields kept in columns of ``records`` rather than in its JSON ``data``.
COLUMNS = {"id": "id", "Owner": "owner_id", "Created_By": "created_by",
           "Modified_By": "modified_by", "Created_Time": "created_time",
           "Modified_Time": "modified_time"}
WORD_TYPES = frozenset({*STRING_TYPES, "textarea", "picklist", "autonumber"})
WORD_RE = re.compile(r"^[\w .@'+-]+$")
PHONE_NOISE = (" ", "-", "(", ")", ".", "+", "/")
API_NAME_RE = re.compile(r"^[A-Za-z0-9_$]+$")
JOIN_RE = re.compile(r"(and|or)\s*\(", re.IGNORECASE)


def invalid_query(reason: str, **details: Any) -> RequestError:
    return RequestError("INVALID_QUERY", "invalid query formed", {**details, "reason": reason})


# --- the parse tree --------------------------------------------------------------------------

@dataclass(slots=True)
class Condition:
    field: Field
    operator: str
    values: list[Any]  # coerced to the field's type; one value but for `in` and `between`


@dataclass(slots=True)
class Group:
    operator: str  # "and" | "or"
    items: list[Condition | Group]


Node = Condition | Group


class _Parser:
    def __init__(self, text: str, module: Module) -> None:
        self.text = text
        self.pos = 0
        self.module = module
        self.conditions = 0
        self.depth = 0

    def fail(self, reason: str = "the criteria is not well formed") -> RequestError:
        return invalid_query(reason, param_name="criteria")

    def ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        self.ws()
        if self.peek() != char:
            raise self.fail()
        self.pos += 1

    def parse(self) -> Node:
        self.ws()
        if self.peek() != "(":  # Zoho's samples: criteria=Campaign_Name:equals:CRM
            node: Node = self.condition(closed=False)
        else:
            node = self.expr()
        self.ws()
        if self.pos != len(self.text):
            raise self.fail()
        return node

    def expr(self) -> Node:
        terms: list[Node] = [self.term()]
        joins: list[str] = []
        while True:
            self.ws()
            match = JOIN_RE.match(self.text, self.pos)
            if match is None:
                break
            joins.append(match.group(1).lower())
            self.pos += len(match.group(1))
            terms.append(self.term())
        if not joins:
            return terms[0]
        # "and" binds tighter than "or"
        ors: list[Node] = []
        run: list[Node] = [terms[0]]
        for join, term in zip(joins, terms[1:], strict=True):
            if join == "and":
                run.append(term)
            else:
                ors.append(run[0] if len(run) == 1 else Group("and", run))
                run = [term]
        ors.append(run[0] if len(run) == 1 else Group("and", run))
        return ors[0] if len(ors) == 1 else Group("or", ors)

    def term(self) -> Node:
        self.expect("(")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail("the criteria is nested too deeply")
        self.ws()
        node = self.expr() if self.peek() == "(" else self.condition(closed=True)
        self.expect(")")
        self.depth -= 1
        return node

    def condition(self, closed: bool) -> Condition:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise RequestError("LIMIT_EXCEEDED", "limit exceeded",
                               {"limit": MAX_CONDITIONS, "param_name": "criteria"})
        name = self.word()
        operator = self.word().lower()
        parts = self.value(closed)
        f = self.module.field(name) if API_NAME_RE.match(name) else None
        if f is None:
            raise invalid_query("the field is not available for search", api_name=name)
        if operator not in KNOWN_OPERATORS:
            raise invalid_query("invalid operator found", api_name=f.api_name, operator=operator)
        if operator not in OPERATORS.get(f.data_type, ()):
            raise invalid_query("the operator is not supported for the field's data type",
                                api_name=f.api_name, operator=operator)
        return Condition(f, operator, coerce(f, operator, parts))

    def word(self) -> str:
        """Up to the next ``:`` (an api name or an operator)."""
        end = self.text.find(":", self.pos)
        word = self.text[self.pos:end].strip() if end >= 0 else ""
        if "(" in word or ")" in word:
            raise self.fail()
        self.pos = end + 1
        if not word:
            raise self.fail()
        return word

    def value(self, closed: bool) -> list[str]:
        """The value's comma-separated parts, escapes resolved; ends at an unescaped ``)``."""
        parts: list[str] = []
        current: list[str] = []
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in "(),\\":
                current.append(text[self.pos + 1])
                self.pos += 2
                continue
            if char == ")" and closed:
                break
            if char == "(" and closed:
                raise self.fail("an unescaped parenthesis in a value")
            if char == ",":
                parts.append("".join(current))
                current = []
            else:
                current.append(char)
            self.pos += 1
        else:
            if closed:
                raise self.fail()
        parts.append("".join(current))
        return parts


def parse_criteria(text: str, module: Module) -> Node:
    return _Parser(text, module).parse()


# --- values -----------------------------------------------------------------------------------

def coerce(f: Field, operator: str, parts: list[str]) -> list[Any]:
    """The condition's values in the field's terms; INVALID_QUERY when they do not fit."""
    if operator in ("in", "between"):
        values = [p.strip() for p in parts]
        if operator == "between" and len(values) != 2:
            raise invalid_query("between takes two values", api_name=f.api_name,
                                operator=operator)
        if len(values) > MAX_IN_VALUES:
            raise RequestError("LIMIT_EXCEEDED", "limit exceeded",
                               {"limit": MAX_IN_VALUES, "api_name": f.api_name,
                                "operator": operator})
    else:
        values = [",".join(parts).strip()]
    if any(v == "" for v in values):
        raise invalid_query("a value is missing", api_name=f.api_name, operator=operator)
    try:
        return [_typed(f, v) for v in values]
    except (ValueError, InvalidOperation):
        raise invalid_query("the value does not match the data type of the field",
                            api_name=f.api_name, operator=operator,
                            expected_data_type=f.data_type) from None


def _typed(f: Field, value: str) -> Any:
    data_type = f.data_type
    if data_type in ("integer", "bigint"):
        if not re.fullmatch(r"[+-]?\d{1,19}", value) or not -(2**63) <= int(value) < 2**63:
            raise ValueError(value)
        return int(value)
    if data_type in ("double", "currency", "percent"):
        number = Decimal(value)
        if not number.is_finite() or number.adjusted() > 30:
            raise ValueError(value)
        return number
    if data_type == "boolean":
        if value.lower() not in ("true", "false"):
            raise ValueError(value)
        return value.lower() == "true"
    if data_type == "date":
        return date.fromisoformat(value).isoformat() if re.fullmatch(
            r"\d{4}-\d{2}-\d{2}", value) else _bad(value)
    if data_type == "datetime":
        # a '+' that was not URL-encoded arrives as a space: 2024-02-01T18:52:56 05:30
        text = re.sub(r" (\d{2}:\d{2})$", r"+\1", value).replace("Z", "+00:00")
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None or "T" not in text:
            raise ValueError(value)
        return moment.astimezone(UTC).replace(microsecond=0)
    if data_type in ("lookup", "ownerlookup", "userlookup"):
        ident = record_id(value)
        if ident is None:
            raise ValueError(value)
        return ident
    return value


def _bad(value: str) -> Any:
    raise ValueError(value)


# --- SQL --------------------------------------------------------------------------------------

class _SQL:
    """Expressions over ``records`` in the store's dialect; every path and value a parameter."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"
        self.args: list[Any] = []

    def bind(self, value: Any) -> str:
        self.args.append(value)
        return "?"

    def path(self, *keys: str) -> str:
        if self.pg:
            return f"jsonb_extract_path_text(data::jsonb, VARIADIC {self.bind(list(keys))}::text[])"
        return f"json_extract(data, {self.bind(json_path(*keys))})"

    def number(self, value: Any) -> Any:
        if self.pg:
            return Decimal(value)
        return value if isinstance(value, int) else float(value)

    # --- one condition
    def condition(self, c: Condition) -> str:
        f, op, values = c.field, c.operator, c.values
        column = COLUMNS.get(f.api_name)
        if column is not None:
            if f.data_type == "datetime":
                values = [int(v.timestamp()) for v in values]
            else:
                values = [int(v) for v in values]
            return self.compare(column, op, values)
        data_type = f.data_type
        if data_type == "multiselectpicklist":
            return self.multiselect(f, op, values)
        if data_type in ("lookup", "userlookup"):
            return self.compare(self.path(f.api_name, "id"), op, values)
        if data_type in NUMBER_TYPES:
            cast = ("AS INTEGER" if data_type in ("integer", "bigint") else "AS REAL")
            expr = (f"({self.path(f.api_name)})::numeric" if self.pg
                    else f"CAST({self.path(f.api_name)} {cast})")
            return self.compare(expr, op, [self.number(v) for v in values])
        if data_type == "boolean":
            expr = (f"({self.path(f.api_name)})::boolean" if self.pg
                    else self.path(f.api_name))
            return self.compare(expr, op, values)
        if data_type == "datetime":
            return self.compare(self.path(f.api_name), op, [v.isoformat() for v in values])
        if data_type == "date":
            return self.compare(self.path(f.api_name), op, values)
        return self.text(self.path(f.api_name), op, [str(v).lower() for v in values],
                         contains=data_type in STRING_TYPES or data_type == "textarea")

    def compare(self, expr: str, op: str, values: list[Any]) -> str:
        if op == "equals":
            return f"{expr} = {self.bind(values[0])}"
        if op == "not_equal":
            return f"COALESCE({expr} <> {self.bind(values[0])}, TRUE)"
        if op == "in":
            return f"{expr} IN ({','.join(self.bind(v) for v in values)})"
        if op == "between":
            low, high = sorted(values)
            return f"{expr} BETWEEN {self.bind(low)} AND {self.bind(high)}"
        return f"{expr} {COMPARE[op]} {self.bind(values[0])}"

    def text(self, expr: str, op: str, values: list[str], contains: bool) -> str:
        lowered = f"lower({expr})"
        if op == "equals" and contains:
            return f"{lowered} LIKE {self.bind('%' + like_escape(values[0]) + '%')} ESCAPE '\\'"
        if op == "starts_with":
            return f"{lowered} LIKE {self.bind(like_escape(values[0]) + '%')} ESCAPE '\\'"
        return self.compare(lowered, op, values)

    def multiselect(self, f: Field, op: str, values: list[str]) -> str:
        if self.pg:
            source = (f"jsonb_array_elements_text(jsonb_extract_path(data::jsonb, "
                      f"VARIADIC {self.bind([f.api_name])}::text[])) AS v(value)")
            element = "lower(v.value)"
        else:
            source = f"json_each(data, {self.bind(json_path(f.api_name))}) AS v"
            element = "lower(v.value)"
        lowered = [str(v).lower() for v in values]
        if op == "starts_with":
            test = f"{element} LIKE {self.bind(like_escape(lowered[0]) + '%')} ESCAPE '\\'"
        elif op == "in":
            test = f"{element} IN ({','.join(self.bind(v) for v in lowered)})"
        else:
            test = f"{element} = {self.bind(lowered[0])}"
        exists = f"EXISTS (SELECT 1 FROM {source} WHERE {test})"
        return f"NOT {exists}" if op == "not_equal" else exists

    def node(self, node: Node) -> str:
        if isinstance(node, Condition):
            return self.condition(node)
        joiner = f" {node.operator.upper()} "
        return "(" + joiner.join(self.node(n) for n in node.items) + ")"

    def any_of(self, fields: list[Field], make: Any) -> str:
        terms = [make(f) for f in fields]
        return "(" + " OR ".join(terms) + ")" if terms else "0 = 1"


def json_path(*keys: str) -> str:
    """SQLite's JSON path to a key (api names are letters, digits and underscores)."""
    return "$" + "".join(f'."{k}"' for k in keys)


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def phone_digits(expr: str) -> str:
    for noise in PHONE_NOISE:
        expr = f"replace({expr}, '{noise}', '')"
    return expr


# --- the search -------------------------------------------------------------------------------

@dataclass(slots=True)
class SearchQuery:
    kind: str  # criteria | email | phone | word
    value: str
    criteria: Node | None
    page_query: reader.ListQuery


def search_query(module: Module, params: Mapping[str, str]) -> SearchQuery:
    """Validate the parameters (criteria wins over email, email over phone, phone over word)."""
    kind = next((k for k in ("criteria", "email", "phone", "word") if params.get(k)), None)
    if kind is None:
        raise RequestError("EXPECTED_PARAM_MISSING", "mandatory param missing",
                           {"expected_params": ["criteria", "email", "phone", "word"]})
    value = params[kind]
    if "\x00" in value:
        raise RequestError("INVALID_DATA", "invalid data",
                           {"param_name": kind, "reason": "a NUL character"})
    criteria = parse_criteria(value, module) if kind == "criteria" else None
    if kind == "word" and (len(value.strip()) < MIN_WORD or not WORD_RE.match(value.strip())):
        raise RequestError("INVALID_DATA", "The search value contains special characters or "
                           "does not contain at least two characters", {"param_name": "word"})
    page, per_page = _position(params)
    if (page - 1) * per_page >= MAX_RESULTS:
        raise RequestError("LIMIT_REACHED", "Maximum response iteration limit reached",
                           {"limit": MAX_RESULTS})
    page_query = reader.list_query(module, {k: params[k] for k in ("fields", "page", "per_page")
                                            if k in params}, False)
    return SearchQuery(kind, value.strip(), criteria, page_query)


def _position(params: Mapping[str, str]) -> tuple[int, int]:
    out = []
    for name, default in (("page", 1), ("per_page", reader.MAX_PER_PAGE)):
        raw = params.get(name) or str(default)
        if not raw.isdigit() or int(raw) < 1:
            raise RequestError("INVALID_DATA", "invalid data",
                               {"param_name": name, "expected_data_type": "integer"})
        out.append(int(raw))
    return out[0], out[1]


def where_clause(sql: _SQL, module: Module, query: SearchQuery, org_id: int) -> str:
    if query.criteria is not None:
        return sql.node(query.criteria)
    value = query.value.lower()
    if query.kind == "email":
        return email_condition(sql, module, query.value, org_id)
    if query.kind == "phone":
        digits = value
        for noise in PHONE_NOISE:
            digits = digits.replace(noise, "")
        return sql.any_of([f for f in module.fields if f.data_type == "phone"],
                          lambda f: f"{phone_digits(sql.path(f.api_name))} = {sql.bind(digits)}")
    pattern = "%" + like_escape(value) + "%"
    return sql.any_of([f for f in module.fields if f.data_type in WORD_TYPES],
                      lambda f: f"lower({sql.path(f.api_name)}) LIKE {sql.bind(pattern)} "
                                "ESCAPE '\\'")


def email_condition(sql: _SQL, module: Module, value: str, org_id: int) -> str:
    """``email=``: the records holding ``value`` in any of the module's email fields, matched
    as the engine matches keys (stripped, case-folded: ``key_of``), through the key tables'
    indexes instead of every record's JSON. The system duplicate-check field and the other
    email fields keep their values in ``match_keys`` (schema/dictionary.py
    ``indexed_fields``), a unique one in ``unique_keys``; only an external email field,
    whose key is its exact text, is compared record by record."""
    fields = [f for f in module.fields if f.data_type == "email"]
    matched = [f for f in fields if not f.is_key]
    unique = [f for f in fields if f.is_key and not f.external_type]
    lookups = []
    for table, scope, group in (("match_keys", "", matched),
                                ("unique_keys", "k.scope = 0 AND ", unique)):
        if group:
            key = key_of(group[0], value)  # the same for every field not external
            where = (f"k.org_id = {sql.bind(org_id)} AND k.module_id = {sql.bind(module.id)} "
                     f"AND k.field_id IN ({','.join(sql.bind(f.id) for f in group)}) AND "
                     f"{scope}k.value = {sql.bind(key)}")  # parameters in their order
            lookups.append(f"SELECT k.record_id FROM {table} k WHERE {where}")
    # one IN over both lookups: SQLite reads records by id then, where an OR of two INs
    # would have it walk the module's index
    terms = [f"id IN ({' UNION ALL '.join(lookups)})"] if lookups else []
    lowered = value.lower()
    terms += [f"lower({sql.path(f.api_name)}) = {sql.bind(lowered)}"
              for f in fields if f.external_type]
    return "(" + " OR ".join(terms) + ")" if terms else "0 = 1"


def search_records(store: Store, principal: Principal, module: Module, query: SearchQuery,
                   version: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One page of matches, newest first, rendered as ``GET /{module}`` renders records."""
    sql = _SQL(store.dialect)
    sql.args += [principal.org_id, module.id]
    condition = where_clause(sql, module, query, principal.org_id)
    page = query.page_query
    offset = (page.page - 1) * page.per_page
    limit = min(page.per_page + 1, MAX_RESULTS - offset + 1)
    with store.read() as tx:
        rows = tx.execute(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE org_id = ? AND module_id = ? "
            f"AND {condition} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*sql.args, limit, offset))
        records = [stored_record(r) for r in rows[: page.per_page]]
        names = reader.lookup_names(tx, principal, module, page.fields, records)
    data = [reader.render(r, page.fields, principal, names) for r in records]
    info: dict[str, Any] = {"per_page": page.per_page, "count": len(data), "page": page.page}
    if version >= 7:
        info.update({"sort_by": "id", "sort_order": "desc"})
    info["more_records"] = len(rows) > page.per_page and offset + len(data) < MAX_RESULTS
    return data, info
