"""The subset of JQL the sandbox understands, evaluated like Jira Cloud evaluates it.

Supported: clauses ``field op value`` joined by AND / OR / NOT and parentheses; operators
``= != > >= < <= ~ IN, NOT IN, IS [NOT] EMPTY``; fields project, key/issuekey/id,
updated, created, resolutiondate/resolved, status, statusCategory, issuetype/type,
resolution, priority, labels, assignee, reporter, summary, the custom fields by name or
``cf[n]``; ``ORDER BY`` with ASC/DESC. Date literals (``yyyy/MM/dd HH:mm``, ``yyyy-MM-dd
HH:mm``, dates alone, relative ``-15m``/``-2h``/``-1d``/``-1w``, epoch ms) are read in the
calling user's time zone and have minute precision (reference §4). Anything else is a 400,
as Jira answers an invalid query; JQL functions (``now()``, ``currentUser()`` …) are not
emulated and are refused with a message saying so.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.jira.site import PRIORITIES, Site
from sandbox.jira.store import Issue, JiraInputError

Predicate = Callable[[Issue], bool]
_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>!=|>=|<=|!~|[=<>~(),])
                       |(?P<word>[^\s=!<>~(),"']+))""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
_DATE_FORMATS = ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d")
_RELATIVE = re.compile(r"^([-+]?)((?:\d+[wdhm]\s*)+)$")
_DATE_FIELDS = {"updated": "updated", "updateddate": "updated", "created": "created",
                "createddate": "created", "resolutiondate": "resolution_date",
                "resolved": "resolution_date"}
_PRIORITY_RANK = {name: int(pid) for pid, name in PRIORITIES.items()}
UNBOUNDED = ("Unbounded JQL queries are not allowed here. Please add a search restriction "
             "to your query.")


def _bad(message: str) -> JiraInputError:
    return JiraInputError([message])


@dataclass
class Token:
    kind: str  # str | op | word
    text: str

    @property
    def lower(self) -> str:
        return self.text.lower()

    def keyword(self, *words: str) -> bool:
        return self.kind == "word" and self.lower in words


def tokenize(jql: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    text = jql.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _bad(f"Error in the JQL Query: the character '{text[position]}' is a reserved "
                       f"JQL character (at character {position + 1}).")
        kind = match.lastgroup or "word"
        value = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append(Token(kind, value))
        position = match.end()
    return tokens


@dataclass
class Query:
    """A parsed query: the filter (None when unbounded) and the ORDER BY terms."""

    where: Predicate | None
    order: list[tuple[str, bool]]  # (field, descending)


class Parser:
    """Recursive descent over the tokens, building predicates against the site."""

    def __init__(self, jql: str, site: Site, tz: str, now: datetime) -> None:
        self.tokens = tokenize(jql)
        self.position = 0
        self.site = site
        self.tz = ZoneInfo(tz)
        self.now = now

    def peek(self) -> Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise _bad("Error in the JQL Query: Expecting either a value, list or function "
                       "but got the end of the query.")
        self.position += 1
        return token

    def parse(self) -> Query:
        where = None
        token = self.peek()
        if token is not None and not token.keyword("order"):
            where = self.expression()
        order = self.order_by()
        if self.peek() is not None:
            raise _bad(f"Error in the JQL Query: Expecting operator but got "
                       f"'{self.peek().text}'.")  # type: ignore[union-attr]
        return Query(where, order)

    def expression(self) -> Predicate:
        terms = [self.term()]
        while (token := self.peek()) is not None and token.keyword("or"):
            self.take()
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else (lambda i: any(t(i) for t in terms))

    def term(self) -> Predicate:
        factors = [self.factor()]
        while (token := self.peek()) is not None and token.keyword("and"):
            self.take()
            factors.append(self.factor())
        return factors[0] if len(factors) == 1 else (lambda i: all(f(i) for f in factors))

    def factor(self) -> Predicate:
        token = self.take()
        if token.keyword("not"):
            inner = self.factor()
            return lambda i: not inner(i)
        if token.kind == "op" and token.text == "(":
            inner = self.expression()
            closing = self.take()
            if closing.text != ")":
                raise _bad("Error in the JQL Query: Expecting ')' but got "
                           f"'{closing.text}'.")
            return inner
        return self.clause(token)

    def clause(self, field_token: Token) -> Predicate:
        name = field_token.text
        op_token = self.take()
        op = op_token.lower
        if op == "not" and (nxt := self.peek()) is not None and nxt.keyword("in"):
            self.take()
            op = "not in"
        elif op == "is" and (nxt := self.peek()) is not None and nxt.keyword("not"):
            self.take()
            op = "is not"
        if op not in ("=", "!=", ">", ">=", "<", "<=", "~", "!~", "in", "not in", "is",
                      "is not"):
            raise _bad(f"Error in the JQL Query: Expecting operator but got '{op_token.text}'.")
        if op in ("is", "is not"):
            value = self.take()
            if not value.keyword("empty", "null"):
                raise _bad("Error in the JQL Query: Expecting 'EMPTY' after 'is'.")
            getter = self.getter(name)
            empty = op == "is"
            return lambda i: (getter(i) in (None, [], "")) == empty
        values = self.values() if op in ("in", "not in") else [self.value()]
        return self.compare(name, op, values)

    def value(self) -> str:
        token = self.take()
        if token.kind == "op":
            raise _bad(f"Error in the JQL Query: Expecting either a value, list or function "
                       f"but got '{token.text}'.")
        nxt = self.peek()
        if token.kind == "word" and nxt is not None and nxt.text == "(":
            raise _bad(f"Unable to find JQL function '{token.text}()'. (The sandbox does not "
                       "emulate JQL functions; use a literal value.)")
        return token.text

    def values(self) -> list[str]:
        opening = self.take()
        if opening.text != "(":
            raise _bad("Error in the JQL Query: Expecting '(' after IN.")
        items = [self.value()]
        while (token := self.take()).text == ",":
            items.append(self.value())
        if token.text != ")":
            raise _bad(f"Error in the JQL Query: Expecting ')' but got '{token.text}'.")
        return items

    def order_by(self) -> list[tuple[str, bool]]:
        token = self.peek()
        if token is None:
            return []
        if not token.keyword("order"):
            raise _bad(f"Error in the JQL Query: Expecting operator but got '{token.text}'.")
        self.take()
        if not self.take().keyword("by"):
            raise _bad("Error in the JQL Query: Expecting 'by' after 'order'.")
        terms: list[tuple[str, bool]] = []
        while True:
            field_name = self.take().text
            self.sort_value(field_name)  # validates the field
            descending = False
            nxt = self.peek()
            if nxt is not None and nxt.keyword("asc", "desc"):
                descending = self.take().lower == "desc"
            terms.append((field_name, descending))
            nxt = self.peek()
            if nxt is None or nxt.text != ",":
                break
            self.take()
            if len(terms) >= 7:  # Jira allows at most 7 ORDER BY fields (reference §2.3)
                raise _bad("The maximum number of ORDER BY fields is 7.")
        return terms

    # --- fields ---------------------------------------------------------------------

    def _custom_id(self, name: str) -> str | None:
        lowered = name.lower()
        for field_def in self.site.fields:
            if field_def.custom and lowered in {c.lower() for c in field_def.clause_names}:
                return field_def.id
        return None

    def getter(self, name: str) -> Callable[[Issue], Any]:
        lowered = name.lower()
        simple: dict[str, Callable[[Issue], Any]] = {
            "project": lambda i: i.project.key,
            # Keys and ids are both accepted wherever an issue is named.
            "key": lambda i: [i.key, str(i.id)], "issuekey": lambda i: [i.key, str(i.id)],
            "issue": lambda i: [i.key, str(i.id)], "id": lambda i: [i.key, str(i.id)],
            "status": lambda i: i.status.name,
            "statuscategory": lambda i: i.status.category,
            "issuetype": lambda i: i.issue_type, "type": lambda i: i.issue_type,
            "resolution": lambda i: i.resolution,
            "priority": lambda i: i.priority,
            "labels": lambda i: i.labels,
            "assignee": lambda i: i.assignee, "reporter": lambda i: i.reporter,
            "summary": lambda i: i.summary,
        }
        if lowered in simple:
            return simple[lowered]
        if lowered in _DATE_FIELDS:
            attribute = _DATE_FIELDS[lowered]
            return lambda i: getattr(i, attribute)
        custom = self._custom_id(name)
        if custom is not None:
            return lambda i: i.custom.get(custom)
        raise _bad(f"Field '{name}' does not exist or you do not have permission to view it.")

    def compare(self, name: str, op: str, values: list[str]) -> Predicate:
        lowered = name.lower()
        getter = self.getter(name)
        if lowered in _DATE_FIELDS:
            instants = [self.instant(v, name) for v in values]
            return _date_predicate(getter, op, instants)
        if op in ("~", "!~"):
            needle = values[0].lower().strip("*")
            contains = op == "~"
            return lambda i: (needle in str(getter(i) or "").lower()) == contains
        if op in (">", ">=", "<", "<=") and lowered != "priority":
            raise _bad(f"The operator '{op}' is not supported by the '{name}' field.")
        normal = [self.normalize(lowered, v) for v in values]
        if lowered == "priority" and op in (">", ">=", "<", "<="):
            rank = _PRIORITY_RANK[normal[0]]
            # Higher priority = lower rank number in Jira.
            checks = {">": lambda r: r < rank, ">=": lambda r: r <= rank,
                      "<": lambda r: r > rank, "<=": lambda r: r >= rank}[op]
            return lambda i: i.priority is not None and checks(_PRIORITY_RANK[i.priority])
        wanted = {str(v).lower() for v in normal}
        positive = op in ("=", "in")

        def matches(issue: Issue) -> bool:
            value = getter(issue)
            if isinstance(value, list):
                hit = any(str(v).lower() in wanted for v in value)
            else:
                hit = value is not None and str(value).lower() in wanted
            return hit if positive else (value is not None and not hit)

        return matches

    def normalize(self, field_name: str, value: str) -> str:
        """Check a value exists where Jira checks it; map names/ids to what issues hold."""
        if field_name == "project":
            project = self.site.project(value)
            if project is None:
                raise _bad(f"The value '{value}' does not exist for the field 'project'.")
            return project.key
        if field_name == "status":
            matches = [s for s in self.site.statuses.values()
                       if s.name.lower() == value.lower() or s.id == value]
            if not matches:
                raise _bad(f"The value '{value}' does not exist for the field 'status'.")
            return matches[0].name
        if field_name == "statuscategory":
            for key, cat in _categories().items():
                if value.lower() in (key, str(cat["id"]), str(cat["name"]).lower()):
                    return key
            raise _bad(f"The value '{value}' does not exist for the field 'statusCategory'.")
        if field_name == "priority":
            found = next((n for pid, n in PRIORITIES.items()
                          if value.lower() in (n.lower(), pid)), None)
            if found is None:
                raise _bad(f"The value '{value}' does not exist for the field 'priority'.")
            return found
        if field_name in ("key", "issuekey", "issue", "id"):
            return value.upper()
        return value

    def instant(self, value: str, name: str) -> datetime:
        """A date literal as a naive UTC instant (minute precision, user's zone)."""
        text = value.strip()
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, UTC).replace(tzinfo=None)
        relative = _RELATIVE.match(text)
        if relative:
            sign = -1 if relative.group(1) == "-" else 1
            delta = timedelta()
            for amount, unit in re.findall(r"(\d+)([wdhm])", relative.group(2)):
                delta += {"w": timedelta(weeks=1), "d": timedelta(days=1),
                          "h": timedelta(hours=1), "m": timedelta(minutes=1)}[unit] * int(amount)
            return (self.now + sign * delta).replace(second=0, microsecond=0)
        for fmt in _DATE_FORMATS:
            try:
                local = datetime.strptime(text, fmt).replace(tzinfo=self.tz)
            except ValueError:
                continue
            return local.astimezone(UTC).replace(tzinfo=None)
        raise _bad(f"Date value '{value}' for field '{name}' is invalid. Valid formats include: "
                   "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a "
                   "period format e.g. '-5d', '4w 2d'.")

    def sort_value(self, name: str) -> Callable[[Issue], Any]:
        lowered = name.lower()
        if lowered in ("key", "issuekey", "id", "issue"):
            return lambda i: [i.project.key, i.number]
        if lowered in _DATE_FIELDS:
            attribute = _DATE_FIELDS[lowered]
            return lambda i: _iso(getattr(i, attribute))
        if lowered == "priority":
            # DESC lists the highest priority first, as in Jira.
            return lambda i: -_PRIORITY_RANK[i.priority] if i.priority else None
        getter = self.getter(name)
        return lambda i: None if getter(i) is None else str(getter(i)).lower()


def _categories() -> dict[str, dict[str, Any]]:
    from sandbox.jira.site import CATEGORIES

    return CATEGORIES


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") if moment else None


def _date_predicate(getter: Callable[[Issue], Any], op: str,
                    instants: list[datetime]) -> Predicate:
    if op in ("in", "not in", "=", "!="):
        wanted = set(instants)
        positive = op in ("in", "=")
        return lambda i: (getter(i) is not None
                          and (getter(i).replace(second=0, microsecond=0) in wanted) == positive)
    bound = instants[0]
    tests: dict[str, Callable[[datetime], bool]] = {
        ">": lambda v: v > bound, ">=": lambda v: v >= bound,
        "<": lambda v: v < bound, "<=": lambda v: v <= bound}
    if op not in tests:
        raise _bad(f"The operator '{op}' is not supported by date fields.")
    test = tests[op]
    return lambda i: getter(i) is not None and test(getter(i))


def sort_keys(parser: Parser, order: list[tuple[str, bool]]
              ) -> Callable[[Issue], list[Any]]:
    """The values an issue sorts by (the ORDER BY terms, then the id as a tie-break)."""
    getters = [parser.sort_value(name) for name, _desc in order]
    return lambda issue: [g(issue) for g in getters] + [issue.id]


def compare_keys(order: list[tuple[str, bool]]) -> Callable[[list[Any], list[Any]], int]:
    """A comparator over ``sort_keys`` values honouring each term's direction; empty
    values sort last ascending, as Jira does."""
    directions = [desc for _name, desc in order] + [False]

    def compare(left: list[Any], right: list[Any]) -> int:
        for a, b, desc in zip(left, right, directions, strict=False):
            if a == b:
                continue
            if a is None or b is None:
                result = 1 if a is None else -1
            else:
                result = -1 if a < b else 1
            return -result if desc else result
        return 0

    return compare


def run(jql: str, issues: list[Issue], site: Site, tz: str, now: datetime, *,
        require_bound: bool = True) -> tuple[list[Issue], Parser, list[tuple[str, bool]]]:
    """Filter and sort ``issues`` by ``jql``; raises JiraInputError for a query Jira rejects."""
    parser = Parser(jql, site, tz, now)
    query = parser.parse()
    if query.where is None and require_bound:
        raise _bad(UNBOUNDED)
    where = query.where or (lambda _i: True)
    # Without ORDER BY, Jira Cloud's default order is by key descending [unsure].
    order = query.order or [("key", True)]
    keys = sort_keys(parser, order)
    compare = compare_keys(order)
    decorated: list[tuple[list[Any], Issue]] = [(keys(i), i) for i in issues if where(i)]
    decorated.sort(key=functools.cmp_to_key(
        lambda a, b: compare(a[0], b[0])))  # type: ignore[index]
    return [issue for _key, issue in decorated], parser, order


def matches(jql: str, issue: Issue, site: Site, tz: str, now: datetime) -> bool:
    """Whether one issue matches a (possibly unbounded) filter: webhook JQL filters."""
    found, _parser, _order = run(jql, [issue], site, tz, now, require_bound=False)
    return bool(found)
