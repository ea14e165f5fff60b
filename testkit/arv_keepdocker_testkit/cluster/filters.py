"""List semantics: filters, where, order, select, distinct, limit/offset, count.

Implements the API server's list semantics (``services/api/lib/load_param.rb``,
``services/api/lib/record_filters.rb``, ``doc/api/methods.html.textile.liquid``)
over records held in memory. ``schema`` maps each
attribute name to its discovery-document type (``string``, ``text``,
``datetime``, ``integer``, ``boolean``, ``Hash``, ``Array``). Datetime values
are fixed-width UTC strings (see :mod:`.timestamps`), so operands are
normalised and then compared as strings.
"""

import json
import re

from . import timestamps
from .httperrors import ApiError
from .store import KINDS, table_of

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_MISSING = object()
_TRUE = {"t", "true", "1", "yes", "y", "on"}
_FALSE = {"f", "false", "0", "no", "n", "off", ""}
_OPERATORS = {"=", "!=", "<>", "<", "<=", ">", ">=", "like", "ilike", "not like", "not ilike",
              "in", "not in", "is_a", "exists", "contains"}


def _bad(message):
    return ApiError(422, message)


# -- parameter decoding ----------------------------------------------------


def json_param(name, value, kind):
    """Decode a list/object parameter sent as JSON text (or already decoded).

    ``kind`` is ``list`` or ``dict``. ``order`` and ``select`` also accept a
    plain comma-separated string, as Rails does.
    """
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            if kind is list and name in ("order", "select"):
                value = [part.strip() for part in value.split(",") if part.strip()]
            else:
                raise _bad("%s: invalid JSON %r" % (name, value)) from None
    if kind is list and isinstance(value, str) and name in ("order", "select"):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, kind):
        raise _bad("%s must be a JSON %s" % (name, "array" if kind is list else "object"))
    return value


def bool_param(name, value, default=False):
    """Decode a boolean parameter: true/false/1/0 (and t/f/yes/no)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _bad("%s must be true or false, got %r" % (name, value))


def int_param(name, value, default):
    """Decode a non-negative integer parameter."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise _bad("%s must be an integer" % name)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        number = int(value)
    else:
        raise _bad("%s must be a non-negative integer, got %r" % (name, value))
    if number < 0:
        raise _bad("%s must not be negative" % name)
    return number


# -- single-value coercion ---------------------------------------------------


def _coerce(attr, kind, operand):
    """Convert a filter operand to the stored representation of a column."""
    if operand is None:
        return None
    if kind == "datetime":
        try:
            return timestamps.normalize(operand)
        except ValueError:
            raise _bad("Invalid timestamp %r for %s" % (operand, attr)) from None
    if kind == "integer":
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise _bad("Invalid operand %r for integer attribute %s" % (operand, attr))
        return operand
    if kind == "boolean":
        if isinstance(operand, bool):
            return operand
        text = str(operand).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise _bad("Invalid operand %r for boolean attribute %s" % (operand, attr))
    if kind in ("string", "text"):
        if isinstance(operand, (dict, list)):
            raise _bad("Invalid operand %r for %s" % (operand, attr))
        return operand if isinstance(operand, str) else json.dumps(operand)
    return operand


def _like_regex(pattern, ignore_case):
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.S | (re.I if ignore_case else 0))


def _comparable(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return True
    return isinstance(a, str) and isinstance(b, str)


_ORDERING = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


# -- one condition -------------------------------------------------------------


def _column_test(attr, kind, op, operand):
    """Return ``test(value) -> bool`` for a plain column."""
    if op in ("=", "!=", "<>"):
        if isinstance(operand, (list, dict)) and kind not in ("Hash", "Array"):
            raise _bad("Invalid operand for '%s' on %s" % (op, attr))
        want = _coerce(attr, kind, operand)
        if op == "=":
            return ((lambda v: v is None) if want is None
                    else (lambda v: v is not None and v == want))
        return (lambda v: v is not None) if want is None else (lambda v: v is None or v != want)
    if op in _ORDERING:
        if operand is None or isinstance(operand, (list, dict, bool)):
            raise _bad("Invalid operand for '%s' on %s" % (op, attr))
        want = _coerce(attr, kind, operand)
        cmp = _ORDERING[op]
        return lambda v: v is not None and _comparable(v, want) and cmp(v, want)
    if op in ("like", "ilike", "not like", "not ilike"):
        if kind not in ("string", "text"):
            raise _bad("Invalid attribute '%s' for '%s' operator" % (attr, op))
        return _like_test(op, operand)
    if op in ("in", "not in"):
        if not isinstance(operand, list):
            raise _bad("Invalid operand for '%s': must be an array" % op)
        wanted = [_coerce(attr, kind, item) for item in operand]
        has_null = None in wanted
        members = [w for w in wanted if w is not None]
        if op == "in":
            return lambda v: (v is None and has_null) or (v is not None and v in members)
        return lambda v: (v is None and not has_null) or (v is not None and v not in members)
    if op == "is_a":
        kinds = operand if isinstance(operand, list) else [operand]
        if not all(isinstance(k, str) for k in kinds):
            raise _bad("Invalid operand for 'is_a'")
        return lambda v: KINDS.get(table_of(v)) in kinds
    if op == "exists":
        if kind != "Hash":
            raise _bad("Invalid attribute '%s' for 'exists' operator" % attr)
        if not isinstance(operand, str):
            raise _bad("Invalid operand for 'exists': must be a string")
        return lambda v: isinstance(v, dict) and operand in v
    if op == "contains":
        if kind != "Array":
            raise _bad("Invalid attribute '%s' for 'contains' operator" % attr)
        items = operand if isinstance(operand, list) else [operand]
        return lambda v: isinstance(v, list) and all(item in v for item in items)
    raise _bad("Invalid operator '%s'" % op)


def _like_test(op, operand):
    """``like``/``ilike`` (and their negations) on string values."""
    if not isinstance(operand, str):
        raise _bad("Invalid operand for '%s': must be a string" % op)
    regex = _like_regex(operand, "ilike" in op)
    if op.startswith("not"):
        return lambda v: isinstance(v, str) and not regex.match(v)
    return lambda v: isinstance(v, str) and bool(regex.match(v))


def _property_test(attr, op, operand):
    """Return ``test(value_or_MISSING) -> bool`` for a ``properties.KEY`` filter."""
    if op == "=":
        return lambda v: v is not _MISSING and v == operand
    if op in ("!=", "<>"):
        return lambda v: v is _MISSING or v != operand
    if op in _ORDERING:
        cmp = _ORDERING[op]
        return lambda v: (v is not _MISSING and v is not None
                          and _comparable(v, operand) and cmp(v, operand))
    if op in ("like", "ilike", "not like", "not ilike"):
        return _like_test(op, operand)
    if op in ("in", "not in"):
        if not isinstance(operand, list):
            raise _bad("Invalid operand for '%s': must be an array" % op)
        if op == "in":
            return lambda v: v is not _MISSING and v in operand
        return lambda v: v is _MISSING or v not in operand
    if op == "exists":
        want = bool_param("exists operand", operand)
        return lambda v: (v is not _MISSING) == want
    if op == "contains":
        items = operand if isinstance(operand, list) else [operand]
        return lambda v: (isinstance(v, list) and all(i in v for i in items)) or (
            not isinstance(v, list) and v is not _MISSING and len(items) == 1 and v == items[0])
    raise _bad("Invalid operator '%s' for subproperty filter %s" % (op, attr))


def _single_attr_test(attr, op, operand, schema):
    """Return ``test(record) -> bool`` for one attribute name."""
    if "." in attr:
        column, key = attr.split(".", 1)
        if schema.get(column) != "Hash":
            raise _bad("Invalid attribute '%s' in filter" % attr)
        if key.startswith("<") and key.endswith(">"):
            key = key[1:-1]
        test = _property_test(attr, op, operand)
        return lambda rec: test((rec.get(column) or {}).get(key, _MISSING))
    if attr not in schema:
        raise _bad("Invalid attribute '%s' in filter" % attr)
    test = _column_test(attr, schema[attr], op, operand)
    return lambda rec: test(rec.get(attr))


def compile_filter(condition, schema):
    """Return ``test(record) -> bool`` for one ``[attr, op, operand]`` condition."""
    if not isinstance(condition, list) or len(condition) != 3:
        raise _bad("Invalid filter %s: need [attribute, operator, operand]" % json.dumps(condition))
    attr, op, operand = condition
    if not isinstance(op, str) or op.lower() not in _OPERATORS:
        raise _bad("Invalid operator %r in filter" % (op,))
    op = op.lower()
    if attr == "any":
        names = [name for name, kind in schema.items() if kind in ("string", "text")
                 and name != "manifest_text"]
    elif isinstance(attr, list):
        names = attr
    elif isinstance(attr, str):
        names = [attr]
    else:
        raise _bad("Invalid attribute %r in filter" % (attr,))
    if not names or not all(isinstance(n, str) for n in names):
        raise _bad("Invalid attribute %r in filter" % (attr,))
    tests = [_single_attr_test(name, op, operand, schema) for name in names]
    if len(tests) == 1:
        return tests[0]
    return lambda rec: any(test(rec) for test in tests)


def compile_filters(filters, where, schema):
    """Return one ``test(record)`` for all filters and the legacy ``where`` object."""
    tests = [compile_filter(cond, schema) for cond in (filters or [])]
    for attr, value in (where or {}).items():
        op = "in" if isinstance(value, list) else "="
        tests.append(compile_filter([attr, op, value], schema))
    return lambda rec: all(test(rec) for test in tests)


# -- order, select -----------------------------------------------------------


def parse_order(order, schema):
    """Return ``[(attr, descending)]``: the caller's order plus the default tiebreak."""
    keys = []
    for item in order or []:
        if not isinstance(item, str):
            raise _bad("Invalid order %r" % (item,))
        parts = item.split()
        if not parts:
            continue
        attr = parts[0].split(".")[-1] if parts[0].count(".") == 1 and "." in parts[0] else parts[0]
        if attr not in schema:
            continue  # Rails silently ignores unknown order columns
        direction = parts[1].lower() if len(parts) > 1 else "asc"
        if direction not in ("asc", "desc"):
            raise _bad("Invalid order direction %r" % item)
        keys.append((attr, direction == "desc"))
    names = [k for k, _ in keys]
    if "uuid" not in names:
        if "modified_at" in schema and "modified_at" not in names:
            keys.append(("modified_at", True))
        keys.append(("uuid", True))
    return keys


def sort_records(records, keys):
    """Sort in place by ``keys``; NULLs sort last ascending and first descending."""
    for attr, desc in reversed(keys):
        present = [r for r in records if r.get(attr) is not None]
        nulls = [r for r in records if r.get(attr) is None]
        try:
            present.sort(key=lambda r: r[attr], reverse=desc)
        except TypeError:
            present.sort(key=lambda r: json.dumps(r[attr], sort_keys=True), reverse=desc)
        records[:] = (nulls + present) if desc else (present + nulls)
    return records


def check_select(select, schema):
    """Raise 422 for a selected attribute the resource does not have."""
    if select is None:
        return None
    for attr in select:
        if not isinstance(attr, str) or (attr not in schema and attr != "kind"):
            raise _bad("Invalid attribute %r in select" % (attr,))
    return select


def project(record, select):
    """Return the record restricted to ``select`` (plus ``kind`` and ``etag``)."""
    if select is None:
        return record
    out = {"kind": record.get("kind"), "etag": record.get("etag")}
    for attr in select:
        out[attr] = record.get(attr)
    return out


# -- a whole list request --------------------------------------------------


def list_response(records, params, schema, kind, default_select=None, finish=None):
    """Apply every list parameter to ``records`` and build the response.

    ``records`` are views that hold every filterable attribute; ``finish``
    (optional) completes a view that made it into the page (``kind``,
    ``etag``, signatures...), so expensive work is done for the page only.
    ``default_select`` is the attribute list used when the caller gives none
    (collections leave out ``manifest_text``); None means every attribute.
    """
    filters = json_param("filters", params.get("filters"), list)
    where = json_param("where", params.get("where"), dict)
    order = json_param("order", params.get("order"), list)
    select = check_select(json_param("select", params.get("select"), list), schema)
    limit = min(int_param("limit", params.get("limit"), DEFAULT_LIMIT), MAX_LIMIT)
    offset = int_param("offset", params.get("offset"), 0)
    count = params.get("count") or "exact"
    if count not in ("exact", "none"):
        raise _bad("count must be 'exact' or 'none', got %r" % count)
    distinct = bool_param("distinct", params.get("distinct"))
    test = compile_filters(filters, where, schema)
    matched = [rec for rec in records if test(rec)]
    keys = parse_order(order, schema)
    if select is not None:
        keys = [(a, d) for a, d in keys if a in select] or keys[-1:]
    sort_records(matched, keys)
    shown = select if select is not None else default_select
    if distinct:
        seen, unique = set(), []
        for rec in matched:
            attrs = shown if shown is not None else sorted(rec)
            marker = json.dumps([rec.get(a) for a in attrs], sort_keys=True, default=str)
            if marker not in seen:
                seen.add(marker)
                unique.append(rec)
        matched = unique
    page = matched[offset:offset + limit]
    if finish is not None:
        page = [finish(rec) for rec in page]
    response = {
        "kind": kind + "List",
        "etag": "",
        "self_link": "",
        "offset": offset,
        "limit": limit,
        "items": [project(rec, shown) for rec in page],
    }
    if count == "exact":
        response["items_available"] = len(matched)
    return response
