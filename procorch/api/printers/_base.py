"""Building blocks shared by the per-group printers: columns, the printer record, time and
list formatting helpers that reproduce what Kubernetes' server-side printers print.

Objects arrive as plain JSON dicts (the v1 wire shape), possibly incomplete: every helper
tolerates a missing or ``null`` field and falls back to what Kubernetes shows for the Go zero
value. Pure functions; no I/O, no shared mutable state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Obj = Mapping[str, Any]
Cell = str | int | bool
CellsFn = Callable[[Obj, datetime], list[Cell]]
ConditionsFn = Callable[[Obj], list[dict[str, str]]]


@dataclass(frozen=True)
class Column:
    """One ``TableColumnDefinition``; ``priority=1`` columns only show with ``-o wide``."""

    name: str
    type: str = "string"
    format: str = ""
    priority: int = 0
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class Printer:
    """How one kind becomes table rows: its columns and a function producing one row's cells.

    Cells always include the wide (priority 1) columns: the server prints wide and kubectl
    hides those columns unless asked, as with a real API server.
    """

    columns: tuple[Column, ...]
    cells: CellsFn
    conditions: ConditionsFn | None = None


NAME = Column("Name", format="name", description="Name must be unique within a namespace.")
AGE = Column("Age", description="Time since the object was created.")


def wide(name: str, description: str = "", *, type: str = "string") -> Column:
    return Column(name, type=type, priority=1, description=description)


CONTAINERS = wide("Containers", "Names of each container in the template.")
IMAGES = wide("Images", "What each container in the template runs.")
SELECTOR = wide("Selector", "The label selector of the pods this object manages.")


# ----------------------------------------------------------------------------------------
# Safe access into JSON dicts.


def m(value: Any) -> Obj:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def lst(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def dig(obj: Obj, *path: str) -> Any:
    current: Any = obj
    for part in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def s(value: Any) -> str:
    """A string field, ``""`` when absent."""
    return value if isinstance(value, str) else ("" if value is None else str(value))


def i(value: Any, default: int = 0) -> int:
    """An integer field; Go's zero value (or ``default``) when absent or malformed."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return default
    return default


def name_of(obj: Obj) -> str:
    return s(dig(obj, "metadata", "name"))


# ----------------------------------------------------------------------------------------
# Time.


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``Time`` or ``MicroTime``) as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration``: coarser as durations grow.

    ``59s``, ``119s``, ``2m30s``, ``9m59s``, ``15m``, ``179m``, ``3h20m``, ``7h59m``, ``36h``,
    ``2d5h``, ``7d23h``, ``94d``, ``729d``, ``3y45d``, ``9y``. Up to a second in the future is
    clock skew and shows as ``0s``; further ahead is ``<invalid>``.
    """
    whole = int(seconds)  # truncates toward zero, as Go's int(d.Seconds()) does
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d" if rest == 0 else f"{days}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{years}y"


def between(start: datetime, end: datetime) -> str:
    return human_duration((_aware(end) - start).total_seconds())


def age(timestamp: Any, now: datetime) -> str:
    """Time since ``timestamp`` (``translateTimestampSince``); ``<unknown>`` when unset."""
    when = parse_time(timestamp)
    if when is None:
        return "<unknown>"
    return between(when, now)


def created_age(obj: Obj, now: datetime) -> str:
    return age(dig(obj, "metadata", "creationTimestamp"), now)


def rfc3339(timestamp: Any) -> str:
    """A timestamp as Go prints ``metav1.Time`` in UTC; Go's zero time when unset."""
    when = parse_time(timestamp)
    if when is None:
        return "0001-01-01T00:00:00Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------------------
# Lists.


def list_with_more(items: list[str], total: int, limit: int, *, empty: str = "<unset>") -> str:
    """The first ``limit`` items joined by commas, then ``+ N more...`` for the rest."""
    text = ",".join(items[:limit])
    if total > limit:
        return f"{text} + {total - limit} more..."
    return text or empty


# procorch containers usually have no image: they run a command. Showing the command in the
# IMAGES column tells a user what each container runs, which is what the column is for. It is
# cut at 40 characters so one long command line does not make the table unreadable.
_COMMAND_WIDTH = 40


def container_image(container: Obj) -> str:
    image = s(container.get("image"))
    if image:
        return image
    argv = [s(a) for a in lst(container.get("command")) + lst(container.get("args"))]
    text = " ".join(argv)
    if len(text) > _COMMAND_WIDTH:
        text = text[: _COMMAND_WIDTH - 3] + "..."
    return text


def layout_containers(containers: list[Any]) -> tuple[str, str]:
    """The CONTAINERS and IMAGES cells of a pod template."""
    names = ",".join(s(m(c).get("name")) for c in containers)
    images = ",".join(container_image(m(c)) for c in containers)
    return names, images


def template_containers(obj: Obj, *path: str) -> list[Any]:
    return lst(dig(obj, *path, "template", "spec", "containers"))
