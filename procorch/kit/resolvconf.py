"""resolv.conf(5), read and written: the host's resolvers (for cluster DNS's upstreams and
``dnsPolicy: Default`` pods) and each pod's own file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ResolvConf:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ResolvConf:
        nameservers: list[str] = []
        searches: list[str] = []
        options: list[str] = []
        for line in text.splitlines():
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            if parts[0] == "nameserver" and len(parts) > 1:
                nameservers.append(parts[1])
            elif parts[0] in ("search", "domain"):
                searches = parts[1:]  # the last search/domain line wins, as in resolv.conf(5)
            elif parts[0] == "options":
                options += parts[1:]
        return cls(tuple(nameservers), tuple(searches), tuple(options))

    def render(self) -> str:
        lines = []
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        lines += [f"nameserver {ns}" for ns in self.nameservers]
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "\n".join(lines) + "\n"

    @classmethod
    def read(cls, path: Path) -> ResolvConf:
        """The file at ``path``; empty if it cannot be read."""
        try:
            return cls.parse(path.read_text())
        except OSError:
            return cls()
