"""String formats Kubernetes checks everywhere: DNS names, qualified names, label values,
config keys, port names, percentages, IP addresses.

Each ``is_*`` function returns the list of problems (Kubernetes' exact wording), empty when
the value is fine, as apimachinery's ``util/validation`` does; callers turn them into causes.
Pure data.
"""

from __future__ import annotations

import ipaddress
import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63

_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character"
)
_LABEL_VALUE_FMT = f"({_QNAME_FMT})?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character"
)
_WILDCARD_FMT = "\\*\\." + _DNS1123_SUBDOMAIN_FMT
_WILDCARD_MSG = (
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
    "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
    "alphanumeric character"
)
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_PERCENT_FMT = "[0-9]+%"
_PERCENT_MSG = "a valid percent string must be a numeric string followed by an ending '%'"
_HEADER_FMT = "[-A-Za-z0-9]+"
_HEADER_MSG = "a valid HTTP header must consist of alphanumeric characters or '-'"
_HTTP_PATH_FMT = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+"
_RELAXED_ENV_MSG = (
    "a valid environment variable name must consist only of printable ASCII characters other "
    "than '='"
)


def _matcher(fmt: str) -> re.Pattern[str]:
    # fullmatch: Go's anchored regexps never match before a trailing newline.
    return re.compile(fmt)


_QNAME_RE = _matcher(_QNAME_FMT)
_LABEL_VALUE_RE = _matcher(_LABEL_VALUE_FMT)
_DNS1123_LABEL_RE = _matcher(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = _matcher(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = _matcher(_DNS1035_LABEL_FMT)
_WILDCARD_RE = _matcher(_WILDCARD_FMT)
_CONFIG_KEY_RE = _matcher(_CONFIG_KEY_FMT)
_PERCENT_RE = _matcher(_PERCENT_FMT)
_HEADER_RE = _matcher(_HEADER_FMT)
_HTTP_PATH_RE = _matcher(_HTTP_PATH_FMT)
_PORT_NAME_CHARS_RE = re.compile("[-a-z0-9]+")
_HAS_LETTER_RE = re.compile("[a-z]")


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Kubernetes' ``RegexError`` wording, odd spacing included."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def inclusive_range_error(low: int, high: int) -> str:
    return f"must be between {low} and {high}, inclusive"


EMPTY_ERROR = "must be non-empty"


def _full(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.fullmatch(value) is not None


def is_dns1123_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_error(DNS1123_LABEL_MAX))
    if not _full(_DNS1123_LABEL_RE, value):
        if _full(_DNS1123_SUBDOMAIN_RE, value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _full(_DNS1123_SUBDOMAIN_RE, value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1035_LABEL_MAX:
        errs.append(max_len_error(DNS1035_LABEL_MAX))
    if not _full(_DNS1035_LABEL_RE, value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_wildcard_dns1123_subdomain(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _full(_WILDCARD_RE, value):
        errs.append(regex_error(_WILDCARD_MSG, _WILDCARD_FMT, "*.example.com"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """A label key, annotation key or finalizer: ``[prefix/]name``."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + EMPTY_ERROR)
        else:
            errs.extend("prefix part " + msg for msg in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + EMPTY_ERROR)
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _full(_QNAME_RE, name):
        errs.append(
            "name part " + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def is_label_value(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_error(LABEL_VALUE_MAX))
    if not _full(_LABEL_VALUE_RE, value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    errs: list[str] = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _full(_CONFIG_KEY_RE, value):
        errs.append(
            regex_error(_CONFIG_KEY_MSG, _CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name")
        )
    errs.extend(_chdir_prefix(value))
    return errs


def is_relaxed_env_var_name(value: str) -> list[str]:
    """Kubernetes 1.32 (RelaxedEnvironmentVariableValidation, on by default): any printable
    ASCII character but '='."""
    errs: list[str] = []
    if not value:
        errs.append("environment variable name " + EMPTY_ERROR)
    if any(not (" " <= ch <= "~") or ch == "=" for ch in value):
        errs.append(_RELAXED_ENV_MSG)
    return errs


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    """An IANA_SVC_NAME: at most 15 characters of [-a-z0-9], at least one letter."""
    errs: list[str] = []
    if len(port) > 15:
        errs.append(max_len_error(15))
    if not _full(_PORT_NAME_CHARS_RE, port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _HAS_LETTER_RE.search(port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_percent(value: str) -> list[str]:
    if _full(_PERCENT_RE, value):
        return []
    return [regex_error(_PERCENT_MSG, _PERCENT_FMT, "1%", "93%")]


def is_http_header_name(value: str) -> list[str]:
    if _full(_HEADER_RE, value):
        return []
    return [regex_error(_HEADER_MSG, _HEADER_FMT, "X-Header-Name")]


def is_valid_path_segment_name(name: str) -> list[str]:
    """Names that end up as one segment of a REST path (RBAC objects, HPA targets)."""
    for illegal in (".", ".."):
        if name == illegal:
            return [f"may not be '{illegal}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


def is_valid_path_segment_prefix(name: str) -> list[str]:
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


def domain_prefixed_path_errors(value: str) -> list[tuple[str, str]]:
    """Problems with ``acme.io/foo``-style values, as (bad value, message) pairs; an empty
    value is reported by the caller as required."""
    segments = value.split("/", 1)
    if len(segments) != 2 or not segments[0] or not segments[1]:
        return [(value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    host, path = segments
    out = [(host, msg) for msg in is_dns1123_subdomain(host)]
    if not _full(_HTTP_PATH_RE, path):
        out.append((path, regex_error("Invalid path", _HTTP_PATH_FMT)))
    return out


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


IP_ERROR = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def is_valid_ip(value: str) -> list[str]:
    return [] if parse_ip(value) is not None else [IP_ERROR]


def is_valid_ipv4(value: str) -> list[str]:
    ip = parse_ip(value)
    return [] if isinstance(ip, ipaddress.IPv4Address) else ["must be a valid IPv4 address"]


def is_valid_ipv6(value: str) -> list[str]:
    ip = parse_ip(value)
    return [] if isinstance(ip, ipaddress.IPv6Address) else ["must be a valid IPv6 address"]


def is_valid_cidr(value: str) -> list[str]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return (
        [] if "/" in value else ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    )
