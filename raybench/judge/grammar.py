"""SLA threshold expressions: the grammar, and the parser into :class:`~raybench.judge.thresholds.Threshold`.

Grammar (k6 spirit; the scope follows the metric, as in k6's ``p(99){cls:risky}<100``)::

    threshold := metric [scope] op target
    metric    := 'p' NUMBER | 'p(' NUMBER ')'          nearest-rank percentile, 0 < NUMBER <= 100
               | 'mean' | 'avg' | 'med' | 'min' | 'max'  ('avg' = mean, 'med' = p50)
               | 'error_rate' | 'throughput'
               | 'share(' 'latency' op duration ')'     share of requests whose latency meets it
               | 'growth(' 'rss' ')'                    memory growth, first vs last quarter
    scope     := '{' key '=' value (',' key '=' value)* '}'
    key       := 'escalated' | 'cls' | 'stage' | 'node' | 'region' | 'role'
    op        := '<' | '<=' | '>' | '>='
    target    := duration                 pN, mean, min, max     e.g. 100ms, 1.5s, 800us (unit required)
               | percent | fraction       error_rate, share, growth   e.g. 0.1%, 99%, 0.001
               | NUMBER '/s' | percent    throughput: absolute rate, or % of the offered load

Spaces are allowed between tokens. Scope values are bare words (anything but ``,{}=<>``, quotes and
space) or quoted with ``"``/``'``. ``escalated`` takes ``true``/``false``; ``stage`` takes one of
:data:`~raybench.judge.thresholds.STAGES` and moves latency metrics from ``latency_ms`` to
``<stage>_ms`` (rows where that stage did not run are left out); ``role`` applies to
``growth(rss)`` only, which takes only ``node`` and ``role``. ``error_rate`` and ``throughput``
take no ``stage``.

Errors name the position, what was expected there, and the allowed metrics and scopes
(:class:`~raybench.errors.ThresholdError`).
"""

from __future__ import annotations

import math
import re

from raybench.errors import ThresholdError
from raybench.judge.thresholds import BARE_VALUE_RE, OPS, SCOPE_KEYS, STAGES, Threshold
from raybench.units import parse_duration, parse_percent

ALLOWED_METRICS = (
    "pN (e.g. p50, p99.9, p(95)), mean, min, max, error_rate, throughput, share(latency<DURATION), growth(rss)"
)
ALLOWED_SCOPES = "{escalated=true|false, cls=NAME, stage=" + "|".join(STAGES) + ", node=ID, region=NAME, role=ROLE}"
_NAMED = {"mean": "mean", "avg": "mean", "min": "min", "max": "max", "error_rate": "error_rate"}
_NUMBER_RE = re.compile(r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?")
_DURATION_RE = re.compile(r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?\s*(?:ns|us|µs|ms|s|m|h)(?![A-Za-z])")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_threshold(text: str) -> Threshold:
    """Parse one threshold expression (grammar in the module docstring).

    Raises:
        ThresholdError: one line naming the position, what was expected, and the allowed metrics
            and scopes.
    """
    if not isinstance(text, str):
        raise ThresholdError(f"threshold {text!r} is not a string; allowed metrics: {ALLOWED_METRICS}")
    return _Parser(text).parse()


def parse_thresholds(texts: list[str] | tuple[str, ...]) -> tuple[Threshold, ...]:
    """Parse several expressions; duplicates (same :attr:`Threshold.id`) are refused."""
    out: list[Threshold] = []
    seen: set[str] = set()
    for text in texts:
        th = parse_threshold(text)
        if th.id in seen:
            raise ThresholdError(f"threshold {text!r} is given twice (as {th.id})")
        seen.add(th.id)
        out.append(th)
    return tuple(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str, pos: int | None = None) -> ThresholdError:
        pos = self.pos if pos is None else pos
        found = repr(self.text[pos : pos + 8]) if pos < len(self.text) else "the end"
        return ThresholdError(
            f"threshold {self.text!r}: at position {pos} (after {self.text[:pos]!r}) expected "
            f"{expected}, found {found}; allowed metrics: {ALLOWED_METRICS}; scopes: {ALLOWED_SCOPES}"
        )

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self, s: str) -> bool:
        self.skip()
        return self.text.startswith(s, self.pos)

    def expect(self, s: str, what: str | None = None) -> None:
        if not self.peek(s):
            raise self.fail(what or repr(s))
        self.pos += len(s)

    def match(self, regex: re.Pattern[str], what: str) -> tuple[str, int]:
        self.skip()
        m = regex.match(self.text, self.pos)
        if not m:
            raise self.fail(what)
        self.pos = m.end()
        return m.group(0), m.start()

    def op(self) -> str:
        self.skip()
        for op in OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        raise self.fail("a comparison: <, <=, > or >=")

    def duration_ms(self) -> float:
        text, start = self.match(_DURATION_RE, "a duration with a unit such as 100ms, 1.5s or 800us")
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise self.fail("a finite duration", start) from None
        # Round away the binary noise of unit conversion (1e-9 ms is far below measurement).
        return round(seconds * 1000.0, 9)

    def fraction(self) -> float:
        text, start = self.match(_NUMBER_RE, "a percentage such as 99% or a fraction such as 0.99")
        if self.peek("%"):
            self.pos += 1
            text += "%"
        value = parse_percent(text)
        if not math.isfinite(value):
            raise self.fail("a finite number", start)
        return value

    def parse(self) -> Threshold:
        metric, q, share_op, share_limit = self.metric()
        scope = self.scope(metric) if self.peek("{") else ()
        op = self.op()
        relative = False
        if metric in ("percentile", "mean", "min", "max"):
            target = self.duration_ms()
        elif metric == "throughput":
            text, _ = self.match(_NUMBER_RE, "a rate such as 950/s or a share of the offered load such as 95%")
            if self.peek("%"):
                self.pos += 1
                target, relative = float(text) / 100.0, True
            else:
                self.expect("/s", "'/s' (a rate such as 950/s) or '%' (a share of the offered load)")
                target = float(text)
        else:
            tpos = self.pos
            target = self.fraction()
            if metric in ("error_rate", "share") and not 0.0 <= target <= 1.0:
                raise self.fail("a share between 0% and 100%", tpos)
        self.skip()
        if self.pos != len(self.text):
            raise self.fail("the end of the expression")
        return Threshold(
            expression=self.text,
            metric=metric,
            op=op,
            target=target,
            q=q,
            relative=relative,
            share_op=share_op,
            share_limit_ms=share_limit,
            scope=scope,
        )

    def metric(self) -> tuple[str, float | None, str | None, float | None]:
        word, start = self.match(_WORD_RE, "a metric")
        if word in _NAMED:
            return _NAMED[word], None, None, None
        if word == "med":
            return "percentile", 50.0, None, None
        if word == "throughput":
            return "throughput", None, None, None
        if word == "share":
            self.expect("(")
            self.expect("latency", "'latency' (share(latency<100ms))")
            share_op = self.op()
            limit = self.duration_ms()
            self.expect(")")
            return "share", None, share_op, limit
        if word == "growth":
            self.expect("(")
            self.expect("rss", "'rss' (growth(rss))")
            self.expect(")")
            return "growth", None, None, None
        if word == "p" or (word.startswith("p") and _NUMBER_RE.fullmatch(word[1:] + "0")):
            # 'p99' lexes as one word; 'p99.9' as 'p99' then '.9'; 'p(95)' as 'p' then '('.
            self.pos = start + 1
            paren = self.peek("(")
            if paren:
                self.pos += 1
            text, qpos = self.match(_NUMBER_RE, "a percentile number such as 99 or 99.9")
            q = float(text)
            if not 0.0 < q <= 100.0:
                raise self.fail("a percentile in (0, 100]", qpos)
            if paren:
                self.expect(")")
            return "percentile", q, None, None
        raise self.fail("a metric", start)

    def scope(self, metric: str) -> tuple[tuple[str, str], ...]:
        self.expect("{")
        pairs: dict[str, str] = {}
        while True:
            key, kpos = self.match(_WORD_RE, "a scope key: " + ", ".join(SCOPE_KEYS))
            if key not in SCOPE_KEYS:
                raise self.fail("a scope key: " + ", ".join(SCOPE_KEYS), kpos)
            if key in pairs:
                raise self.fail(f"each scope key once ({key!r} is repeated)", kpos)
            allowed = ("node", "role") if metric == "growth" else tuple(k for k in SCOPE_KEYS if k != "role")
            if metric in ("error_rate", "throughput"):
                allowed = tuple(k for k in allowed if k != "stage")
            if key not in allowed:
                raise self.fail(f"a scope key allowed for {metric}: {', '.join(allowed)}", kpos)
            self.expect("=")
            pairs[key] = self.value(key)
            if self.peek(","):
                self.pos += 1
                continue
            self.expect("}", "',' or '}'")
            break
        return tuple((k, pairs[k]) for k in SCOPE_KEYS if k in pairs)

    def value(self, key: str) -> str:
        self.skip()
        vpos = self.pos
        if self.pos < len(self.text) and self.text[self.pos] in "\"'":
            quote = self.text[self.pos]
            end = self.text.find(quote, self.pos + 1)
            if end < 0:
                raise self.fail(f"a closing {quote}")
            value = self.text[self.pos + 1 : end]
            self.pos = end + 1
        else:
            value, _ = self.match(BARE_VALUE_RE, f"a value for {key}")
        if key == "escalated" and value not in ("true", "false"):
            raise self.fail("true or false", vpos)
        if key == "stage" and value not in STAGES:
            raise self.fail("a stage: " + ", ".join(STAGES), vpos)
        return value
